"""Network profiles: bandwidth each way and round-trip time; latency of bytes and rounds over them."""
from __future__ import annotations

from pathlib import Path

from cost_models.constants import ConstantFile, ConstantSpec

NETWORK_SCHEMA = "pisim.network/1"

NETWORK_CONSTANTS: dict[str, ConstantSpec] = {
    "upload_bandwidth": ConstantSpec("bit/s", positive=True),    # client -> server
    "download_bandwidth": ConstantSpec("bit/s", positive=True),  # server -> client
    "rtt": ConstantSpec("s"),
}


class Network(ConstantFile):
    @property
    def upload_bits_per_s(self) -> float:
        return self.constants["upload_bandwidth"].value

    @property
    def download_bits_per_s(self) -> float:
        return self.constants["download_bandwidth"].value

    @property
    def rtt_s(self) -> float:
        return self.constants["rtt"].value

    def transfer_seconds(self, up_bytes: float, down_bytes: float, rounds: float) -> float:
        """Time on the wire: each direction at its bandwidth, plus one RTT per round trip."""
        return 8 * up_bytes / self.upload_bits_per_s + 8 * down_bytes / self.download_bits_per_s + rounds * self.rtt_s


def load_network(name_or_path: str | Path) -> Network:
    return Network.read("networks", name_or_path, NETWORK_SCHEMA, NETWORK_CONSTANTS)
