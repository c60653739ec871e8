import os

# The repository root: the bundled curves and the Rust command line live there.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
