"""A pretext task as a plug-in: predict which permutation of the RGB channels was applied.

Install this folder (``pip install examples/pretext_plugin``) and recipes can
name the task ``channel-swap``; ``semisup pretext list`` shows it.
"""

from dataclasses import dataclass
from itertools import permutations

import torch

from semisup.pretext import PretextTask

ORDERS = torch.tensor(list(permutations(range(3))))  # the 6 channel orders; 0 is RGB itself


class ChannelSwap(PretextTask):
    """Which of the six RGB channel orders was applied to a frame?"""

    num_classes = len(ORDERS)

    @dataclass(frozen=True)
    class Options:
        """``identity_share``: fraction of frames left in their own order."""

        identity_share: float = 1 / 6

    def forward(self, frames, encode):
        x = frames.flatten(0, 1)                                          # (N, 3, H, W)
        target = torch.randint(1, self.num_classes, (len(x),), device=x.device)
        keep = torch.rand(len(x), device=x.device) < self.options.identity_share
        target[keep] = 0
        order = ORDERS.to(x.device)[target]                               # (N, 3)
        swapped = torch.gather(x, 1, order.view(-1, 3, 1, 1).expand_as(x))
        return self.classify(encode(swapped), target)
