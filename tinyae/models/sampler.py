"""Sampling new codes from the codes of real data: one Gaussian, or a Gaussian mixture.

A plain autoencoder has no prior to sample from, but its codes of real images
do have a distribution. Fit a density to them, draw new codes from it and
decode them, and you have a generator (tutorial 12)::

    codes = model.embed(x_train).numpy()
    sampler = GMMSampler("gaussian", covariance_scale=0.5).fit(codes, y_train)
    images = model.decode(sampler.sample(16, label=3))

Fitting per class (``labels`` given) turns it into a conditional generator:
``sample(n, label=3)`` draws only from the density of the threes.

- ``kind="gaussian"``: one normal distribution per class, with the sample mean
  and the sample covariance of that class's codes, the covariance multiplied by
  ``covariance_scale`` (below 1 draws nearer the mean: cleaner, less varied).
- ``kind="mixture"``: scikit-learn's ``GaussianMixture`` with ``n_components``
  full-covariance components, initialised by k-means, per class; each
  component's covariance is scaled the same way when sampling.

Codes live on the host: ``fit`` takes and ``sample`` returns float32 NumPy arrays.
"""
import warnings

import numpy

KINDS = ("gaussian", "mixture")


class GMMSampler:
    """A density over latent codes, per class or overall, that draws new codes.

    Args:
        kind: "gaussian" (one Gaussian per class) or "mixture" (a Gaussian mixture).
        n_components: components per class for ``kind="mixture"`` (capped by the
            class size, with a warning).
        covariance_scale: factor applied to every covariance when sampling.
        seed: seed of the sampler's own random generator (fitting and sampling).
        reg_covar: added to the covariance diagonal, so that code dimensions that
            never vary (a dead ReLU unit) still give a valid distribution.

    Attributes (after ``fit``): ``classes_`` (the labels, or ``[None]``),
    ``priors_`` (class frequencies), ``latent_dim_``.

    Example::

        sampler = GMMSampler("mixture", n_components=20, seed=0).fit(codes, labels)
        z = sampler.sample(100, label=7)      # (100, latent_dim) float32
    """

    def __init__(self, kind="gaussian", n_components=10, covariance_scale=1.0, seed=0,
                 reg_covar=1e-6):
        if kind not in KINDS:
            raise ValueError(f"GMMSampler: kind must be one of {KINDS}, got {kind!r}")
        if int(n_components) < 1:
            raise ValueError(f"GMMSampler: n_components must be at least 1, got {n_components}")
        if covariance_scale < 0:
            raise ValueError(f"GMMSampler: covariance_scale must be >= 0, got {covariance_scale}")
        self.kind = kind
        self.n_components = int(n_components)
        self.covariance_scale = float(covariance_scale)
        self.seed = seed
        self.reg_covar = float(reg_covar)
        self.rng = numpy.random.default_rng(seed)
        self.classes_ = None

    # ------------------------------------------------------------------ fitting
    def fit(self, codes, labels=None):
        """Fit one density per class of ``labels`` (or one overall when None); returns self."""
        codes = _host_codes(codes, "codes")
        if labels is None:
            groups = {None: codes}
        else:
            labels = numpy.asarray(getattr(labels, "numpy", lambda: labels)()).reshape(-1)
            if len(labels) != len(codes):
                raise ValueError(f"GMMSampler.fit: {len(codes)} codes but {len(labels)} labels; "
                                 "give one label per code")
            groups = {label.item(): codes[labels == label] for label in numpy.unique(labels)}
        self.latent_dim_ = codes.shape[1]
        self.classes_ = list(groups)
        self.priors_ = numpy.array([len(group) for group in groups.values()], float) / len(codes)
        self.components_ = {}
        for label, group in groups.items():
            if self.kind == "gaussian":
                self.components_[label] = self._fit_gaussian(group, label)
            else:
                self.components_[label] = self._fit_mixture(group, label)
        return self

    def _fit_gaussian(self, group, label):
        """Sample mean and covariance: a mixture of one component."""
        if len(group) < 2:
            raise ValueError(f"GMMSampler.fit: class {label!r} has {len(group)} code; a "
                             "covariance needs at least 2")
        mean = group.mean(axis=0, dtype=numpy.float64)
        covariance = numpy.cov(group, rowvar=False, dtype=numpy.float64).reshape(
            group.shape[1], group.shape[1])
        covariance += self.reg_covar * numpy.eye(group.shape[1])
        return numpy.ones(1), mean[None], covariance[None]

    def _fit_mixture(self, group, label):
        from sklearn.mixture import GaussianMixture
        k = self.n_components
        if k > len(group):
            warnings.warn(f"GMMSampler.fit: class {label!r} has only {len(group)} codes, fewer "
                          f"than n_components={k}; using {len(group)} components for it",
                          stacklevel=3)
            k = len(group)
        mixture = GaussianMixture(n_components=k, covariance_type="full", init_params="kmeans",
                                  reg_covar=self.reg_covar,
                                  random_state=int(self.rng.integers(2**31 - 1)))
        mixture.fit(group.astype(numpy.float64))
        return mixture.weights_, mixture.means_, mixture.covariances_

    # ------------------------------------------------------------------ sampling
    def sample(self, n, label=None, return_labels=False):
        """Draw ``n`` codes (float32, shape (n, latent_dim)) from class ``label``.

        With ``label=None`` the class of each code is drawn from the class
        frequencies seen in ``fit`` (pass ``return_labels=True`` to get them).
        """
        if self.classes_ is None:
            raise RuntimeError("GMMSampler.sample: call fit(codes, labels) first")
        n = int(n)
        if label is None:
            labels = self.rng.choice(len(self.classes_), size=n, p=self.priors_)
            labels = numpy.array([self.classes_[i] for i in labels])
        else:
            if label not in self.components_:
                raise ValueError(f"GMMSampler.sample: no class {label!r}; the sampler was "
                                 f"fitted on classes {self.classes_}")
            labels = numpy.array([label] * n)
        codes = numpy.empty((n, self.latent_dim_), numpy.float32)
        for value in self.classes_:
            where = numpy.flatnonzero(labels == value) if value is not None else numpy.arange(n)
            if len(where):
                codes[where] = self._sample_class(value, len(where))
        return (codes, labels) if return_labels else codes

    def _sample_class(self, label, n):
        """Choose a component by its weight, then draw from its scaled Gaussian."""
        weights, means, covariances = self.components_[label]
        which = self.rng.choice(len(weights), size=n, p=weights / weights.sum())
        out = numpy.empty((n, means.shape[1]))
        for k in numpy.unique(which):
            rows = numpy.flatnonzero(which == k)
            out[rows] = self.rng.multivariate_normal(
                means[k], covariances[k] * self.covariance_scale, size=len(rows), method="eigh")
        return out

    def __repr__(self):
        fitted = f", classes={self.classes_}" if self.classes_ is not None else ""
        return (f"GMMSampler(kind={self.kind!r}, n_components={self.n_components}, "
                f"covariance_scale={self.covariance_scale}{fitted})")


def _host_codes(codes, name):
    """Codes as a 2-D float NumPy array (a Tensor is copied to the host)."""
    if hasattr(codes, "numpy") and not isinstance(codes, numpy.ndarray):
        codes = codes.numpy()
    codes = numpy.asarray(codes, dtype=numpy.float64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"GMMSampler: {name} must be a non-empty 2-D array (n_codes, "
                         f"latent_dim), got shape {codes.shape}")
    if not numpy.isfinite(codes).all():
        raise ValueError(f"GMMSampler: {name} contain NaN or Inf")
    return codes
