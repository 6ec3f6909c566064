"""Argument checks done in Python, before a value reaches the dispatcher. Shape, dtype and
device checks live in the C++ ops (csrc/*.cpp) so that every caller gets them."""

import numbers

import torch


def check_tensor(value, name):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def check_number(value, name):
    if isinstance(value, bool) or not isinstance(
        value, (numbers.Real, torch.SymInt, torch.SymFloat)
    ):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return value


def check_pair(value, name):
    """A number or a (y, x) / (height, width) pair, returned as a pair."""
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 2:
            raise ValueError(f"{name} must have 2 entries, got {len(value)}")
        return check_number(value[0], name), check_number(value[1], name)
    check_number(value, name)
    return value, value


def check_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, torch.SymInt)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def check_same_device(a, a_name, b, b_name):
    """Tensors of one call on one device. The dispatcher would send a meta and a CPU tensor to
    the meta kernel, which computes nothing and so cannot check, and return a meta result."""
    if a.device != b.device:
        raise ValueError(
            f"{a_name} and {b_name} must be on the same device, got {a.device} and {b.device}"
        )
