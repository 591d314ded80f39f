"""Pure ML code: no Django import here, and TensorFlow only inside functions."""

import os

# TensorFlow's C++ start-up chatter (CPU features, oneDNN) hides the progress and metrics people read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
