"""What the embedded demo is (``vrbridge run`` with no network): its seed and the notice it shows.

The demo network and the demo encoder are seeded random-init models, so a new user sees a moving picture
with no downloads; everything that builds or reports them reads these names.
"""

DEMO_SEED = 0  # seeds the demo generator's and the demo encoder's random weights
DEMO_NOTICE = ("untrained demo network (random weights): the pictures are not meaningful. "
               "Point it at a real model with: vrbridge run --network path/to/network.pkl")
