"""Hinton knowledge distillation from the baseline teacher.

loss = (1 - weight) * CE(student, labels) + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T)).
Defaults T = 4, weight = 0.5. DeepReDuce's own values are unconfirmed (papers.md 1.1); SNL's public code uses
T = 4 with the KD term added at weight 1 to the full CE; a 0.5/0.5 mix keeps the label signal as strong as the
teacher's, which matters for the short schedules a CPU search runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 4.0
DEFAULT_WEIGHT = 0.5


@dataclass(frozen=True)
class Distillation:
    temperature: float = DEFAULT_TEMPERATURE
    weight: float = DEFAULT_WEIGHT

    def loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                        reduction="batchmean") * t * t
        return (1 - self.weight) * F.cross_entropy(student_logits, labels) + self.weight * soft
