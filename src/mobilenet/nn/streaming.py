"""MobileNetV2's memory-efficient inference (Sandler et al. 2018, Section 5): blocks computed in channel groups.

An inverted residual is F(x) = [A o N o B] x: A the 1x1 expansion (+ BN + activation), N the depthwise 3x3
(+ BN + activation), B the linear 1x1 projection. N works channel by channel, so splitting the expanded
(inner) channels into k groups gives F(x) = sum_i (A_i o N o B_i)(x): each group is expanded, filtered and
projected, and the projections are summed. Only one group of the expanded tensor, n/k channels, exists at
a time. The projection's BN is affine per output channel, so it is applied once, after the sum.

The footnote to the paper's Table 3 streams the first layer the same way: the 3x3 stem conv followed by the
first block (t = 1: depthwise + projection, no expansion) is itself expansion + depthwise + projection.

Inference only: BatchNorm is taken as the scale and shift of its running statistics, and intermediate
results are modified in place, which autograd could not differentiate.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from mobilenet.nn.blocks import InvertedResidual
from mobilenet.nn.layers import ConvNormAct
from mobilenet.nn.model import MobileNet


def check_inference(module: nn.Module) -> None:
    """Refuse a training-mode call or one that autograd records: the BN folding and in-place updates need neither."""
    name = type(module).__name__
    if module.training:
        raise RuntimeError(f"{name} is for inference only: call .eval() first (it cannot train)")
    if torch.is_grad_enabled():
        raise RuntimeError(f"{name} is for inference only: call it under torch.no_grad() or torch.inference_mode()")


def channel_slices(channels: int, groups: int) -> list[slice]:
    """``groups`` consecutive ranges that cover ``channels``; when they do not divide, the first ones get one more."""
    if not 1 <= groups <= channels:
        raise ValueError(f"groups must be between 1 and the {channels} expanded channels, got {groups}")
    size, extra = divmod(channels, groups)
    bounds = [i * size + min(i, extra) for i in range(groups + 1)]
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


def conv_part(conv: nn.Conv2d, out_channels: slice | None = None, in_channels: slice | None = None) -> nn.Conv2d:
    """A copy of ``conv`` restricted to some of its output or input channels.

    The copy is of the same class, so it pads as the original does (TF "SAME" included), with the same
    stride and dilation; a depthwise conv stays depthwise. Its weight is a contiguous copy of the slice, so
    that the forward does not gather a strided view on every call.
    """
    if conv.bias is not None:
        raise ValueError("streaming expects bias-free convolutions (a BatchNorm follows each)")
    depthwise = conv.groups > 1
    if depthwise and conv.groups != conv.in_channels:
        raise ValueError(f"only dense or depthwise convolutions can be split, got groups={conv.groups}")
    weight = conv.weight.detach()
    if out_channels is not None:
        weight = weight[out_channels]
    if in_channels is not None:
        weight = weight[:, in_channels]
    outputs = weight.shape[0]
    inputs = outputs if depthwise else weight.shape[1]
    part = type(conv)(
        inputs, outputs, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        outputs if depthwise else 1, bias=False, padding_mode=conv.padding_mode, device="meta",
    )  # fmt: skip
    part.weight = nn.Parameter(weight.clone(memory_format=torch.contiguous_format), requires_grad=False)
    return part


def activation_of(layer: nn.Sequential) -> nn.Module | None:
    """The activation that ends a ConvNormAct, if it has one."""
    return layer[2] if len(layer) > 2 else None


class InPlaceNorm(nn.Module):
    """An eval-mode BatchNorm on some of its channels as a per-channel scale and shift, then an optional activation.

    Scale and shift are computed once, from the running statistics, as PyTorch's own eval-mode kernel does;
    both are applied in place, so no second tensor of the same size is allocated.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, norm: nn.BatchNorm2d, channels: slice, activation: nn.Module | None = None) -> None:
        super().__init__()
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError("a BatchNorm without running statistics cannot be applied in channel groups")
        scale = 1 / torch.sqrt(norm.running_var.detach() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.detach()
        shift = -norm.running_mean.detach() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.detach()
        self.register_buffer("scale", scale[channels].reshape(-1, 1, 1).clone())
        self.register_buffer("shift", shift[channels].reshape(-1, 1, 1).clone())
        self.activation = copy.deepcopy(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mul_(self.scale).add_(self.shift)
        return x if self.activation is None else self.activation(x)


class ChannelGroup(nn.Module):
    """(A_i o N o B_i): one group of the expanded channels, expanded, filtered depthwise and projected.

    Its output is this group's share of the projection, before the projection's BatchNorm.
    """

    def __init__(self, expansion: nn.Sequential, depthwise: nn.Sequential, projection: nn.Conv2d, channels: slice):
        super().__init__()
        self.expansion = conv_part(expansion[0], out_channels=channels)
        self.expansion_norm = InPlaceNorm(expansion[1], channels, activation_of(expansion))
        self.depthwise = conv_part(depthwise[0], out_channels=channels)
        self.depthwise_norm = InPlaceNorm(depthwise[1], channels, activation_of(depthwise))
        self.projection = conv_part(projection, in_channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.expansion_norm(self.expansion(x))
        inner = self.depthwise_norm(self.depthwise(inner))
        return self.projection(inner)


class StreamingInvertedResidual(nn.Module):
    """An :class:`InvertedResidual` computed in ``groups`` groups of its expanded channels (inference only).

    Built from a trained block, whose tensors it copies: the block itself is left as it is. With ``stem``,
    the unit is ``stem`` followed by ``block``, a block without expansion and without shortcut (MobileNetV2's
    first, t = 1): the stem's output channels are the groups. Groups differ by one channel when the expanded
    channels do not divide by ``groups``; ``groups=1`` is the plain block, computed this way.
    """

    def __init__(self, block: InvertedResidual, groups: int, stem: ConvNormAct | None = None) -> None:
        super().__init__()
        layers = list(block.conv)
        if stem is not None:
            if block.has_expansion or block.use_res_connect:
                raise ValueError("only a block without expansion and without shortcut can be streamed with the stem")
            expansion = stem
        elif block.has_expansion:
            expansion, layers = layers[0], layers[1:]
        else:
            raise ValueError("a block without expansion has no expanded tensor to split: stream it with its stem")
        depthwise, projection, projection_norm, *activation = layers
        slices = channel_slices(projection.in_channels, groups)
        self.channel_groups = nn.ModuleList(ChannelGroup(expansion, depthwise, projection, part) for part in slices)
        self.projection_norm = InPlaceNorm(projection_norm, slice(None), activation[0] if activation else None)
        self.groups, self.hidden_channels = groups, projection.in_channels
        self.out_channels, self.use_res_connect = block.out_channels, block.use_res_connect
        self.eval()  # inference only, so built ready for it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_inference(self)
        first, *rest = self.channel_groups
        out = first(x)
        for group in rest:
            out += group(x)  # the group's projection is freed at once: one extra output-sized tensor at most
        out = self.projection_norm(out)
        return out.add_(x) if self.use_res_connect else out


def streaming_model(model: MobileNet, groups: int) -> MobileNet:
    """A copy of MobileNetV2 ``model`` whose expanding blocks, and its stem with the first block, run in channel groups.

    The copy shares no tensor with ``model``, is in eval mode, requires no gradients and must be called
    under ``torch.no_grad()`` or ``torch.inference_mode()``; its outputs equal ``model``'s in eval mode up
    to float rounding (the projections are summed in another order). The stem and the first block become
    ``features.0``, and ``features.1`` an ``nn.Identity``, so the other layers keep their names; the stem
    stays plain when the first block expands or has a shortcut. The head's 1x1 conv is not a block and
    stays plain.

    MobileNetV1 is refused: its blocks do not expand, so its largest tensors are block outputs, which
    streaming cannot avoid.
    """
    if not any(isinstance(layer, InvertedResidual) and layer.has_expansion for layer in model.features):
        raise ValueError(
            f"{model.config.arch} has no expanding block to stream: streaming splits the expanded tensor of "
            "MobileNetV2's inverted residuals"
        )
    if model.config.shortcut == "expansion":
        raise ValueError(
            "shortcut='expansion' adds one block's expanded tensor to the next block's, so it cannot be split into "
            "groups: stream a model with shortcut='bottleneck' or 'none'"
        )
    streamed = copy.deepcopy(model).requires_grad_(False)
    features = streamed.features
    stem, first = features[0], features[1]
    # Only a first block with neither expansion nor shortcut makes stem + block an expansion, depthwise, projection.
    plain_first = isinstance(first, InvertedResidual) and not (first.has_expansion or first.use_res_connect)
    if isinstance(stem, ConvNormAct) and plain_first:
        features[0], features[1] = StreamingInvertedResidual(first, groups, stem=stem), nn.Identity()
    for index, layer in enumerate(list(features)):
        if isinstance(layer, InvertedResidual) and layer.has_expansion:
            features[index] = StreamingInvertedResidual(layer, groups)
    return streamed.eval()
