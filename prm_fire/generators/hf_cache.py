"""A KV-cache layer for the HF backend's decode loop that writes each new position in place.

HF's ``DynamicLayer`` concatenates the whole cache with every new token: each decode step copies every
layer's keys and values (about 10% of the decode time of qwen2.5-coder-0.5b at n = 10, 286-token
prompt; ``benchmarks/profile_hf_decode.py``). :class:`RoomyLayer` keeps them in buffers with free
positions after them and returns views of the filled part: the same numbers, so attention and the
branches are unchanged. Imported lazily by :mod:`prm_fire.generators.hf` (it imports transformers).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` over buffers with ``room`` free positions; it grows (one concatenation) only when full.

    >>> keys = torch.zeros(2, 1, 3, 4)
    >>> layer = RoomyLayer(keys, keys.clone(), room=2)
    >>> k, v = layer.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))
    >>> k.shape, layer.key_buffer.shape, k[0, 0, :, 0].tolist()
    (torch.Size([2, 1, 4, 4]), torch.Size([2, 1, 5, 4]), [0.0, 0.0, 0.0, 1.0])
    >>> layer.batch_select_indices(torch.tensor([1])); layer.drop_leading(2); layer.keys.shape
    torch.Size([1, 1, 2, 4])
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.length = keys.shape[-2]
        self.key_buffer, self.value_buffer = with_room(keys, room), with_room(values, room)
        self._views()

    def _views(self) -> None:
        self.keys = self.key_buffer[..., : self.length, :]
        self.values = self.value_buffer[..., : self.length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions after the filled ones; return keys and values of every position."""
        new = key_states.shape[-2]
        if self.length + new > self.key_buffer.shape[-2]:
            room = max(new, self.length)
            self.key_buffer, self.value_buffer = with_room(self.keys, room), with_room(self.values, room)
        self.key_buffer[..., self.length : self.length + new, :] = key_states
        self.value_buffer[..., self.length : self.length + new, :] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the batch rows ``indices``."""
        self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
        self._views()

    def drop_leading(self, columns: int) -> None:
        """Forget the first ``columns`` positions (padding that no row attends to any more)."""
        self.key_buffer = self.key_buffer[..., columns:, :]
        self.value_buffer = self.value_buffer[..., columns:, :]
        self.length -= columns
        self._views()


def with_room(t: torch.Tensor, room: int) -> torch.Tensor:
    """``t`` ([batch, heads, positions, dim]) copied into a buffer with ``room`` more positions."""
    buffer = t.new_empty(*t.shape[:-2], t.shape[-2] + room, t.shape[-1])
    buffer[..., : t.shape[-2], :] = t
    return buffer
