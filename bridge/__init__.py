"""visual-reactive-bridge: steer a StyleGAN generator with a camera and a performer's hands, live.

Data flows one way: source -> tracking/encoding -> synthesis -> sinks, with controls (OSC, maps,
presets) feeding the parameter store from the side. See README.md and docs/architecture.md.
"""
__version__ = "0.1.0"
APP_NAME = "vrbridge"
