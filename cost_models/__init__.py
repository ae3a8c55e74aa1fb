"""Protocol cost models: price an op graph's private inference, per layer, online and offline."""
from cost_models.cost import Cost, PhaseCost
from cost_models.estimate import COST_CONVENTIONS, Estimate, LayerCost, PhaseFigures, price
from cost_models.setting import PricingSetting, load_setting

__all__ = ["Cost", "PhaseCost", "Estimate", "LayerCost", "PhaseFigures", "PricingSetting", "load_setting", "price",
           "COST_CONVENTIONS"]
