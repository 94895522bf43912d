"""Manipulations: hand-driven edits of the generator's own tensors, applied in the render thread before synthesis.

Each manipulation has ``apply(generator, params, keypoints, now)`` (cheap: preallocated tensors, no Python loop
over channels) and ``features() -> dict[str, float]`` for telemetry. It finds its tensor by NVIDIA's name once,
keeps the original to restore exactly, and does nothing (saying so once) on a network without that tensor.

- :mod:`bridge.manipulate.const_corruption`: StyleGAN2 ``synthesis.b4.const`` corruption.
- :mod:`bridge.manipulate.sg3_transform`: StyleGAN3 ``synthesis.input.transform``.
- :mod:`bridge.manipulate.curves`: response curves and the easing ramp.
"""
