"""Membership-inference attacks: plain functions over signals, one signature, a registry by name."""

from miaudit.attacks.base import ATTACKS, AttackInput, AttackSpec, NotApplicable, PopSignals, make_input, register_attack

from miaudit.attacks import lira, threshold  # noqa: F401  isort: skip

__all__ = ["ATTACKS", "AttackInput", "AttackSpec", "NotApplicable", "PopSignals", "make_input", "register_attack"]
