"""A fuzz harness over PISim's loaders: mutated model archives, data files and results files, each fed to
its loader in a child process, counted as accepted, refused with one line, or a failure to reproduce.

    python -m fuzz.run --minutes 10            # every loader, round robin
    python -m fuzz.run --minutes 1 --target results --seed 3
"""
