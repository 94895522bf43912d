"""``vrbridge devices``: cameras OpenCV can open (indices 0-9), the torch devices and the MIDI ports, for
--source / --device / --midi-in / --midi-out."""
from __future__ import annotations

import os
import sys

HELP = "list cameras (OpenCV indices 0-9), audio inputs (PortAudio), torch devices (cpu, cuda, mps) and MIDI ports"
MAX_INDEX = 10


def add_arguments(parser) -> None:
    parser.add_argument("--max-index", type=int, default=MAX_INDEX, help="probe camera indices below this")


def main(args) -> int:
    print("cameras (use --source camera:N):")
    found = probe_cameras(args.max_index)
    for index, desc in found:
        print(f"  camera:{index}  {desc}")
    if not found:
        print("  none found")
    print("audio inputs (use --audio INDEX or --audio NAME; --audio file:PATH plays a file):")
    lines = audio_inputs()
    for line in lines:
        print(f"  {line}")
    if not lines:
        print("  none found")
    print("torch devices (use --device):")
    for name, desc in torch_devices():
        print(f"  {name:5s} {desc}")
    print_midi_ports()
    return 0


def print_midi_ports() -> None:
    """MIDI ports, or the one line saying why there are none (never a traceback)."""
    from bridge.midi.ports import MidiUnavailable, list_ports

    print("MIDI ports (use --midi-in NAME / --midi-out NAME):")
    try:
        inputs, outputs = list_ports()
    except MidiUnavailable as exc:
        print(f"  {exc}")
        return
    for name in inputs:
        print(f"  in   {name}")
    for name in outputs:
        print(f"  out  {name}")
    if not inputs and not outputs:
        print("  none found")


def probe_cameras(max_index: int) -> list[tuple[int, str]]:
    """Open each index briefly and read one frame. On Linux, indices without /dev/videoN are skipped at once."""
    import cv2

    found = []
    for index in range(max_index):
        if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
            continue
        cap = cv2.VideoCapture(index)
        try:
            if not cap.isOpened():
                continue
            ok, frame = cap.read()
            if ok and frame is not None:
                fps = cap.get(cv2.CAP_PROP_FPS)
                found.append((index, f"{frame.shape[1]}x{frame.shape[0]}" + (f" @ {fps:g} fps" if fps else "")))
        finally:
            cap.release()
    return found


def audio_inputs() -> list[str]:
    """One line per PortAudio input device, or the one line saying why there are none."""
    from bridge.audio.inputs import AudioInputError, input_devices, sounddevice_module

    try:
        sd = sounddevice_module()
        devices = input_devices(sd)
    except AudioInputError as exc:
        return [f"(unavailable: {exc})"]
    except Exception as exc:  # noqa: BLE001 - PortAudioError while listing: say so, list the rest
        return [f"(PortAudio cannot list devices: {exc})"]
    host_apis = {i: api["name"] for i, api in enumerate(sd.query_hostapis())}
    return [f"{index:3d}  {info['name']}  ({host_apis.get(info.get('hostapi'), '?')}, "
            f"{info['max_input_channels']} ch, {info['default_samplerate']:g} Hz)" for index, info in devices]


def torch_devices() -> list[tuple[str, str]]:
    import torch

    out = [("cpu", f"{torch.get_num_threads()} threads, torch {torch.__version__}")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append((f"cuda:{i}" if i else "cuda", f"{props.name}, {props.total_memory / 2**30:.0f} GiB"))
    else:
        out.append(("cuda", "not available in this torch build / machine"))
    mps = getattr(torch.backends, "mps", None)
    out.append(("mps", "available" if mps is not None and mps.is_available() else "not available"))
    return out
