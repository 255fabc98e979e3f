"""What a model costs: parameters, training time per epoch, sampling throughput."""
import time

from .. import backend
from ..autograd import Tensor


def parameter_count(model):
    """The number of trainable values in ``model`` (for a GAN: generator and discriminator)."""
    return model.num_parameters()


class EpochTimer:
    """A ``tinyae.train`` callback that records the wall time of every epoch.

    Example::

        timer = EpochTimer()
        tinyae.train(model, x, epochs=5, callbacks=[timer])
        timer.seconds_per_epoch        # mean over the epochs

    ``clock`` (seconds, default ``time.perf_counter``) is there to be replaced in tests.
    """

    def __init__(self, clock=time.perf_counter):
        self.epoch_seconds = []
        self.clock = clock
        self._last = None

    def on_train_begin(self, trainer):
        """Start the clock."""
        self._last = self.clock()

    def on_epoch_end(self, trainer, epoch, history):
        """Record the seconds since the previous epoch ended."""
        now = self.clock()
        if self._last is not None:
            self.epoch_seconds.append(now - self._last)
        self._last = now

    @property
    def seconds_per_epoch(self):
        """The mean of the recorded epoch times."""
        if not self.epoch_seconds:
            return float("nan")
        return sum(self.epoch_seconds) / len(self.epoch_seconds)


def _synchronise(images):
    """Wait for the device: bring the images to the host (a GPU computes asynchronously)."""
    if isinstance(images, Tensor):
        images = images.data
    return backend.to_numpy(images)


def sampling_throughput(sample, n=1000, batch_size=500, clock=time.perf_counter):
    """Images per second of ``sample(count)`` (a function returning ``count`` images),
    drawing ``n`` images ``batch_size`` at a time after one small warm-up call.
    ``clock`` (seconds) is there to be replaced in tests.

    Example::

        sampling_throughput(lambda count: vae.sample(count))        # e.g. 25000.0
    """
    _synchronise(sample(min(8, n)))       # first calls compile kernels and fill caches
    start = clock()
    for first in range(0, n, batch_size):
        _synchronise(sample(min(batch_size, n - first)))
    return n / (clock() - start)
