"""Keypoints over OSC (real UDP on loopback into the project's OSC server): the same landmarks give the same
Keypoints and features as in-process tracking; bad messages are answered and change nothing."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.udp_client import SimpleUDPClient

from bridge.frames import HAND_LANDMARK_NAMES, Frame
from bridge.osc.server import OscServer
from bridge.params import ParamStore
from bridge.tracking.features import HandFeatures
from bridge.tracking.mediapipe_hands import MediaPipeHandTracker
from bridge.tracking.model import load_hand_model
from bridge.tracking.osc_input import OSC_PATTERNS, OscHandTracker

from conftest import IMAGES, wait_for


@pytest.fixture(scope="module")
def tracked():
    """Keypoints MediaPipe finds in handDst.jpg (640x480), tracked in-process."""
    rgb = cv2.cvtColor(cv2.imread(str(IMAGES / "handDst.jpg")), cv2.COLOR_BGR2RGB)
    tracker = MediaPipeHandTracker(load_hand_model())
    try:
        kp = tracker.process(Frame(rgb=rgb, index=0, t_capture=1.0))
    finally:
        tracker.close()
    assert kp is not None and kp.active == 0
    return kp


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig():
    """The OSC server on a free loopback port with an OSC hand tracker registered, and a client to it."""
    store = ParamStore()
    server = OscServer(store, "127.0.0.1", 0)
    clock = Clock()
    tracker = OscHandTracker(store.snapshot, clock=clock)
    for pattern in OSC_PATTERNS:
        server.add_handler(pattern, tracker.handle)
    server.start()
    try:
        yield store, server, tracker, SimpleUDPClient("127.0.0.1", server.port), clock
    finally:
        server.close()


def send_bundle(client: SimpleUDPClient, messages) -> None:
    bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    for address, *args in messages:
        msg = osc_message_builder.OscMessageBuilder(address=address)
        for arg in args:
            msg.add_arg(arg)
        bundle.add_content(msg.build())
    client.send(bundle.build())


def landmark_messages(hand, style: str):
    out = []
    for name, (x, y, z) in zip(HAND_LANDMARK_NAMES, hand.landmarks.tolist()):
        if style == "path":
            out += [(f"/vrb/in/h1/{name}/x", x), (f"/vrb/in/h1/{name}/y", y), (f"/vrb/in/h1/{name}/z", z)]
        elif style == "channels":  # TouchDesigner OSC Out CHOP channel names, no prefix
            out += [(f"/h1:{name}:x", x), (f"/h1:{name}:y", y), (f"/h1:{name}:z", z)]
        else:  # one message per landmark
            out.append((f"/vrb/in/h1/{name}", x, y, z))
    return out


@pytest.mark.parametrize("style", ["path", "channels", "xyz"])
def test_osc_keypoints_give_the_same_features_as_in_process_tracking(rig, tracked, style):
    store, server, tracker, client, _ = rig
    hand = tracked.active_hand
    messages = [("/vrb/in/aspect", 640 / 480), ("/vrb/in/h1/handedness", hand.handedness),
                ("/vrb/in/h1/score", hand.score)] + landmark_messages(hand, style)
    send_bundle(client, messages)
    assert wait_for(lambda: tracker.messages == len(messages))
    kp = tracker.latest()
    assert kp.source == "osc" and len(kp.hands) == 1 and kp.active == 0
    got = kp.active_hand
    assert np.array_equal(got.landmarks, hand.landmarks)  # float32 in, float32 over the wire: exact
    assert got.handedness == hand.handedness and got.score == pytest.approx(hand.score, abs=1e-6)
    assert kp.aspect == pytest.approx(tracked.aspect, abs=1e-6)
    params = store.snapshot()
    over_osc, in_process = HandFeatures(), HandFeatures()
    over_osc.update(kp, params)
    in_process.update(tracked, params)
    a, b = over_osc.values(), in_process.values()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == pytest.approx(b[name], abs=1e-5), name
    assert server.stats()["errors"] == 0
    assert tracker.latest() is kp  # nothing new: the same object (the render loop sees "no change")


def test_bad_keypoint_messages_are_answered_and_change_nothing(rig, tracked):
    store, server, tracker, client, _ = rig
    send_bundle(client, landmark_messages(tracked.active_hand, "xyz"))
    assert wait_for(lambda: tracker.messages == 21)
    before = tracker.latest().active_hand.landmarks.copy()
    bad = [("/vrb/in/h1/elbow/x", 0.5), ("/vrb/in/h9/wrist/x", 0.5), ("/vrb/in/h1/wrist/x", "left"),
           ("/vrb/in/h1/wrist", 0.1), ("/vrb/in/h1/wrist/w", 0.2), ("/vrb/in/h1/handedness", "both"),
           ("/vrb/in/aspect", 0.0)]
    for address, *args in bad:
        client.send_message(address, args[0])
    assert wait_for(lambda: server.stats()["errors"] == len(bad))
    codes = server.stats()["errors_by_code"]
    assert codes["unknown"] == 3 and codes["type"] == 4, codes
    kp = tracker.latest()
    assert np.array_equal(kp.active_hand.landmarks, before)
    assert kp.active_hand.handedness == "right"  # h1's default, untouched by the bad handedness


def test_stale_hidden_and_zero_hands_disappear(rig, tracked):
    store, server, tracker, client, clock = rig
    send_bundle(client, landmark_messages(tracked.active_hand, "xyz"))
    assert wait_for(lambda: tracker.messages == 21)
    assert tracker.latest().active == 0
    clock.t += tracker.stale_s + 0.1  # the sender went quiet
    kp = tracker.latest()
    assert kp.hands == () and kp.active is None
    send_bundle(client, landmark_messages(tracked.active_hand, "xyz"))
    assert wait_for(lambda: tracker.messages == 42)
    assert tracker.latest().active == 0  # back near where it was: the lock picks it up again
    client.send_message("/vrb/in/h1/present", 0)
    assert wait_for(lambda: tracker.messages == 43)
    assert tracker.latest().hands == ()
    zeros = [(f"/vrb/in/h1/{name}", 0.0, 0.0, 0.0) for name in HAND_LANDMARK_NAMES]
    send_bundle(client, zeros)  # what senders send when they see no hand
    assert wait_for(lambda: tracker.messages == 64)
    assert tracker.latest().hands == ()


def test_y_up_senders_are_flipped_and_aspect_comes_from_frames(rig, tracked):
    store, server, tracker, client, _ = rig
    flipped = [(f"/vrb/in/h2/{name}", x, 1.0 - y) for name, (x, y, _) in
               zip(HAND_LANDMARK_NAMES, tracked.active_hand.landmarks.tolist())]
    store.set("hand.osc_y_up", True)
    tracker.submit(Frame(rgb=np.zeros((480, 640, 3), np.uint8), index=0, t_capture=0.0))
    send_bundle(client, flipped)
    assert wait_for(lambda: tracker.messages == 21)
    kp = tracker.latest()
    assert kp.aspect == pytest.approx(640 / 480)
    got = kp.active_hand
    assert got.handedness == "left"  # h2's default
    assert np.allclose(got.landmarks[:, :2], tracked.active_hand.landmarks[:, :2], atol=1e-6)


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from bridge.params import ParamError  # noqa: E402

_ARGS = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**31, 2**31 - 1),
                           st.text(max_size=8), st.booleans(), st.none(), st.binary(max_size=8)), max_size=4)
_ADDRESSES = st.one_of(
    st.sampled_from(["/vrb/in/aspect", "/vrb/in/h1/wrist", "/vrb/in/h1/wrist/x", "/h2:index_tip:y",
                     "/vrb/in/h1/present", "/vrb/in/h3/score", "/vrb/in/h4/handedness", "/vrb/in/h0/wrist/x",
                     "/vrb/in/h1", "/vrb/in/h1/", "/h1:", "/vrb/in/h99999999999999/wrist/x"]),
    st.text(max_size=30).map(lambda s: "/vrb/in/" + s))


@hsettings(max_examples=300, deadline=None)
@given(messages=st.lists(st.tuples(_ADDRESSES, _ARGS), max_size=20))
def test_any_message_is_taken_or_refused_with_a_param_error(messages):
    """Garbage from the rig never breaks the tracker: a ParamError (answered by the server) or nothing."""
    tracker = OscHandTracker()
    for address, args in messages:
        try:
            tracker.handle(address, tuple(args), ("127.0.0.1", 9))
        except ParamError:
            pass
        kp = tracker.latest()
        if kp is not None:
            for hand in kp.hands:
                assert np.isfinite(hand.landmarks).all()  # z too: a huge double must not become float32 inf
            assert kp.active is None or 0 <= kp.active < len(kp.hands)
            assert 0.1 <= kp.aspect <= 10.0


def test_a_number_too_big_for_a_keypoint_is_refused_and_changes_nothing():
    tracker = OscHandTracker()
    for name in HAND_LANDMARK_NAMES:
        tracker.handle(f"/vrb/in/h1/{name}", (0.5, 0.5, 0.0), ("127.0.0.1", 9))
    before = tracker.latest()
    assert len(before.hands) == 1
    for args in ((1e300,), (-1e7,)):
        with pytest.raises(ParamError, match="within"):
            tracker.handle("/vrb/in/h1/wrist/z", args, ("127.0.0.1", 9))
    after = tracker.latest()
    assert np.array_equal(after.hands[0].landmarks, before.hands[0].landmarks)
