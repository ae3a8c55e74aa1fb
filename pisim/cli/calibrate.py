"""`pisim calibrate`: measure this machine's cryptography and write a hardware profile."""
from __future__ import annotations

import argparse
import re
import sys

from pisim.cli.arguments import output_file
from pisim.errors import UserError
from pisim.io import atomic_write
from pisim.report import FORMATS, Column, Table

EXAMPLES = """examples:
  pisim calibrate --quick --out laptop.toml         under a minute: fewer repeats, 4,096-ReLU garbling
  pisim calibrate --out server.toml --name server   the full run (a few minutes; it says how long up front)
  pisim estimate cifar-resnet18 --protocol delphi --server-profile server.toml --client-profile laptop.toml
  pisim validate cifar-resnet18 --layers layer2.0.relu1 --profile laptop.toml
  pisim calibrate --protocol cheetah --quick --out spu.toml   a real Cheetah (SPU; `make spu-env` first)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "calibrate", help="measure this machine's GC, OT and HE speed and write a hardware profile",
        description="Run real cryptography on this machine -- a half-gates garbled ReLU circuit over Delphi's "
                    "41-bit field, IKNP oblivious transfer, and SEAL's BFV at N = 8192 -- and write a hardware "
                    "profile (schema pisim.profile/1) that `pisim estimate` and `pisim validate` accept as "
                    "--client-profile / --server-profile. Each constant is the median of repeated runs on one "
                    "thread, stored with its repeats, spread and what was measured; the file also records the "
                    "CPU, core count, library versions and date.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="FILE", type=output_file,
                        help="profile to write (TOML; written atomically, only after every benchmark finished; "
                             "checked for writability before the first benchmark)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and smaller batches: under a minute, noisier constants")
    parser.add_argument("--name", metavar="NAME",
                        help="profile name recorded in the file (default: the file name without .toml)")
    parser.add_argument("--protocol", choices=("delphi", "cheetah"), default="delphi",
                        help="delphi (default): PISim's own GC, OT and BFV; cheetah: secretflow SPU's Cheetah in its "
                             "own environment (`make spu-env`), ReLUs, truncations and matrix products at a few "
                             "sizes, per-unit costs fitted by least squares into the profile's [measured] table")
    parser.add_argument("--base-profile", default="cheetah-testbed", metavar="NAME_OR_TOML",
                        help="with --protocol cheetah: where the profile's constants SPU does not measure come "
                             "from, each source saying so, and the ratios of the three HE constants that one "
                             "fitted factor scales (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="format of the summary printed to stdout (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cost_models.calibrate import FULL, QUICK, calibrate, profile_toml

    name = args.name or re.sub(r"\.toml$", "", args.out.replace("\\", "/").rsplit("/", 1)[-1])
    if not name:
        raise UserError(f"cannot name a profile after {args.out!r}: pass --name")
    if args.protocol == "cheetah":
        return _run_cheetah(args, name)
    sizes = QUICK if args.quick else FULL
    result = calibrate(sizes, progress=lambda items, what: tqdm(items, desc=what, unit="benchmark", file=sys.stderr),
                       announce=lambda text: print(text, file=sys.stderr))
    atomic_write(args.out, profile_toml(result, name))
    print(f"wrote {args.out}", file=sys.stderr)
    rows = [{"constant": c.name, "value": c.value, "unit": c.unit, "repeats": c.repeats,
             "spread": c.spread} for c in result.constants]
    rows += [{"constant": c.name, "value": c.value, "unit": c.unit, "repeats": None, "spread": None}
             for c in result.implementation]
    columns = [Column("constant", "constant", numeric=False), Column("value", "value"),
               Column("unit", "unit", numeric=False), Column("repeats", "repeats"), Column("spread", "spread")]
    notes = [f"{result.provenance['cpu']}, {result.provenance['cores']} cores, one thread, "
             f"{result.sizes.name} run of {result.provenance['seconds']} s",
             "rows without repeats are fixed by the implementation ([implementation] in the profile)"]
    sys.stdout.write(Table(f"profile {name}", columns, rows, notes=notes).render(args.format))
    return 0


def _run_cheetah(args: argparse.Namespace, name: str) -> int:
    from cost_models import calibrate_cheetah as cheetah

    sizes = cheetah.QUICK if args.quick else cheetah.FULL
    print(f"{sizes.name} Cheetah calibration in SPU: {len(sizes.elements)} ReLU and truncation sizes, "
          f"{len(sizes.products)} matrix products, {sizes.repeats} runs each after a warm-up ...", file=sys.stderr)
    result = cheetah.calibrate(sizes, args.base_profile)
    atomic_write(args.out, cheetah.profile_toml(result, name, args.base_profile))
    print(f"wrote {args.out}", file=sys.stderr)
    rows = [{"constant": c.name, "value": c.fit.per_unit, "unit": c.unit, "fixed": c.fit.fixed,
             "points": c.fit.points, "spread": c.fit.spread} for c in result.constants]
    rows += [{"constant": c.name, "value": c.value, "unit": c.unit, "fixed": None, "points": None,
              "spread": c.spread} for c in (*result.model, *result.implementation)]
    columns = [Column("constant", "constant", numeric=False), Column("value", "per unit"),
               Column("unit", "unit", numeric=False), Column("fixed", "fixed per layer"),
               Column("points", "sizes"), Column("spread", "spread")]
    p = result.provenance
    notes = [f"SPU {result.run.spu_version}, Cheetah on Z_2^{p['ring_bits']} with {p['fraction_bits']} fraction bits, "
             f"{p['transport']}; {p['cpu']}; {sizes.name} run of {p['seconds']} s",
             "value = fixed + per unit x units, least squares over sizes of each layer's median run; "
             "spread = max - min of the per-size slopes; rows without sizes are the cost model's constants "
             "([constants], [implementation]) fitted from the same runs"]
    sys.stdout.write(Table(f"profile {name} (Cheetah measured in SPU)", columns, rows, notes=notes).render(args.format))
    return 0
