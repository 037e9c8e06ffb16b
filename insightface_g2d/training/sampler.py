"""A distributed sampler whose order depends only on (seed, epoch) and that can start mid-epoch.

Exact resume needs the data order of an epoch to be reproducible and the interrupted epoch to go
on at the batch where it stopped: `set_epoch(epoch, start=k)` skips this rank's first k samples
without drawing any random number differently from an uninterrupted run.
"""
import math

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler):
    """Shuffled indices of range(n), split across `num_replicas` ranks like DistributedSampler
    (padded by repeating the first indices so every rank gets the same count)."""

    def __init__(self, n, num_replicas=1, rank=0, seed=0, shuffle=True):
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.num_samples = math.ceil(self.n / self.num_replicas)  # per rank
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        self.epoch, self.start = int(epoch), int(start)

    def rank_indices(self):
        """This rank's full index list for the current epoch (before skipping)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = self.num_samples * self.num_replicas
        if total > self.n:
            order = order.repeat(math.ceil(total / self.n))[:total]
        return order[self.rank:total:self.num_replicas].tolist()

    def __iter__(self):
        return iter(self.rank_indices()[self.start:])

    def __len__(self):
        return max(0, self.num_samples - self.start)
