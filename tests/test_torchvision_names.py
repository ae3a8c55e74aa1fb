"""`pisim models` lists torchvision's classifiers from a shipped list; it must be torchvision's own list."""
from pisim.zoo import torchvision_names


def test_the_shipped_list_is_the_installed_torchvisions_or_is_not_used():
    release, names = torchvision_names.shipped_names()
    live = torchvision_names.live_names()
    if torchvision_names.installed_version() == release:
        assert names == live  # regenerate pisim/zoo/data/torchvision-classifiers.json when the pin moves
    assert list(torchvision_names.classifier_names()) == live


def test_another_release_is_asked_directly(monkeypatch):
    torchvision_names.classifier_names.cache_clear()
    monkeypatch.setattr(torchvision_names, "installed_version", lambda: "0.0.1")
    monkeypatch.setattr(torchvision_names, "live_names", lambda: ["only_this_one"])
    try:
        assert torchvision_names.classifier_names() == ("only_this_one",)
    finally:
        torchvision_names.classifier_names.cache_clear()
