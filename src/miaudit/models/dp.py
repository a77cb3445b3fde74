"""Make an AuditModel trainable with DP-SGD (Opacus): BatchNorm -> GroupNorm."""

from __future__ import annotations

import copy

import torch
from opacus.validators import ModuleValidator
from torch import nn

from miaudit.models.base import AuditModel, norm_layer

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def make_private_compatible(model: AuditModel) -> AuditModel:
    """Return a copy of ``model`` with every BatchNorm replaced by GroupNorm, accepted by Opacus.

    Why: DP-SGD clips each example's gradient and adds noise to their sum, which needs
    per-sample gradients. BatchNorm normalises each example with statistics of the whole
    batch, so one example's output (and its gradient) depends on every other example in
    the batch: a per-sample gradient is undefined and the clipping bound no longer limits
    one record's influence. GroupNorm normalises within each example, so it is safe.

    Notes
    -----
    The replacement is ``norm_layer("group", C)`` (at most 8 groups, a divisor of C), the
    layer a model gets when built with ``norm="group"``, so converting a BatchNorm model
    gives the same architecture as building it DP-safe in the first place. BatchNorm's
    affine weights are copied (its running statistics have no GroupNorm equivalent), so
    the function of a trained model changes: convert before training. The copy is returned
    in training mode (Opacus rejects a model in eval mode); ``model`` itself is untouched. The models' ``cam_layer`` is a property resolved on access (e.g.
    ``layer4``), so it points at the converted modules; a plain ``cam_layer`` attribute that
    was itself a BatchNorm is re-pointed at its replacement.

    Raises
    ------
    opacus.validators.errors.UnsupportedModuleError
        If the converted model still has a layer Opacus cannot train privately.
    """
    out = copy.deepcopy(model)
    replaced: dict[int, nn.Module] = {}
    for parent in list(out.modules()):
        # every slot, not named_children(): one module registered under two names
        # (e.g. a ``cam_layer`` attribute) must be replaced under both
        for child_name, child in list(parent._modules.items()):
            if isinstance(child, _BATCH_NORMS):
                if id(child) not in replaced:
                    replaced[id(child)] = _to_group_norm(child)
                setattr(parent, child_name, replaced[id(child)])
    cam = out.__dict__.get("cam_layer")  # only a plain attribute, never a property
    if isinstance(cam, nn.Module) and id(cam) in replaced:
        object.__setattr__(out, "cam_layer", replaced[id(cam)])
    out.train()  # Opacus only accepts a model in training mode; conversion precedes training anyway
    ModuleValidator.validate(out, strict=True)
    return out


def _to_group_norm(bn: nn.modules.batchnorm._BatchNorm) -> nn.GroupNorm:
    """The GroupNorm that ``norm="group"`` would build, carrying BatchNorm's affine weights."""
    ref = norm_layer("group", bn.num_features)
    assert isinstance(ref, nn.GroupNorm)  # internal invariant of norm_layer, not user input
    device = bn.weight.device if bn.affine else None
    gn = nn.GroupNorm(ref.num_groups, bn.num_features, eps=bn.eps, affine=bn.affine, device=device)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
    return gn
