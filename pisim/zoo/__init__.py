"""Built-in model zoo: CIFAR-style networks that torchvision does not ship."""
from pisim.zoo.registry import ZOO, build_zoo_model, zoo_names

__all__ = ["ZOO", "build_zoo_model", "zoo_names"]
