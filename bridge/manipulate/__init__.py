"""Levers on the generator's own tensors, applied in the render thread before synthesis.

Each lever has ``apply(generator, params, now)`` (cheap: preallocated tensors, no Python loop over channels),
reads only the frame's parameter snapshot (routes have already put the hand, the audio or a fader there) and
``features() -> dict[str, float]`` for telemetry. It finds its tensor by NVIDIA's name once, keeps the original
to restore exactly, and does nothing (saying so once) on a network without that tensor.

- :mod:`bridge.manipulate.const_corruption`: StyleGAN2 ``synthesis.b4.const`` corruption (``const.corrupt``).
- :mod:`bridge.manipulate.sg3_transform`: StyleGAN3 ``synthesis.input.transform`` (``sg3.*``).
"""


def tensor_levers() -> list:
    """Every tensor lever, in the order they run each frame (each idles on networks it does not fit)."""
    from bridge.manipulate.const_corruption import ConstCorruption
    from bridge.manipulate.sg3_transform import InputTransform

    return [ConstCorruption(), InputTransform()]
