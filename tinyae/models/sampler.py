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

Keeping samples in their class. A density fitted to the threes has tails, and
some of its draws land where the codes of the fives lie: decoded, they are
fives. The sampler holds a density p(z | c) for every class c and the class
frequencies p(c), so Bayes' rule gives each code's class posterior

    p(c | z) = p(z | c) p(c) / sum_c' p(z | c') p(c'),

and a code drawn for class c whose posterior is below ``min_posterior`` lies,
by the fitted densities' own account, in another class's region. A code can
also lie in no class's region: a mixture's thin components have tails where
no training code of c lies. So a kept code must also have a class density
log p(z | c) at least that of the lowest ``density_quantile`` (1%) of c's own
training codes. By default ``sample`` redraws codes that fail either test
until ``n`` are kept (``inside_class=False`` gives the raw draws) and records
the share kept in ``acceptance_rate_``.
A decoder can still turn a code well inside class c into an image that is no
clear c; ``sample(..., round_trip=model)`` also applies the posterior test to
the code of the decoded image, ``model.embed(model.decode(z))``. ``check(codes)`` applies the test to
any codes (an interpolation, a latent-arithmetic step) and also flags the ones
far from every class's density, whose log-density p(z) is below that of 99% of
the training codes.

Codes live on the host: ``fit`` takes and ``sample`` returns float32 NumPy arrays.
"""
import collections
import math
import numbers
import warnings

import numpy

KINDS = ("gaussian", "mixture")

# Codes whose posterior is scored at once (a (components, rows, latent_dim) block).
_SCORE_ROWS = 512
# Training codes scored to place the "far from every class" floor of ``check``, and,
# per class, the floor of the class-density test.
_FLOOR_CODES = 2000

CodeCheck = collections.namedtuple("CodeCheck", "label posterior log_density far")
CodeCheck.__doc__ = """What ``GMMSampler.check`` says of each code (arrays of the codes' leading
shape): ``label``, the class with the highest posterior; ``posterior``, p(label | z);
``log_density``, log p(z) = log sum_c p(z | c) p(c); ``far``, log p(z) below
``log_density_floor_`` (further from every class than almost all training codes)."""


class GMMSampler:
    """A density over latent codes, per class or overall, that draws new codes.

    Args:
        kind: "gaussian" (one Gaussian per class) or "mixture" (a Gaussian mixture).
        n_components: components per class for ``kind="mixture"`` (capped by the
            class size, with a warning; each component should have a few dozen
            codes: about 6,000 codes per MNIST digit carry K = 250).
        covariance_scale: factor applied to every covariance when sampling.
        seed: seed of the sampler's own random generator (fitting and sampling).
        reg_covar: added to the covariance diagonal, so that code dimensions that
            never vary (a dead ReLU unit) still give a valid distribution.
        inside_class: the default of ``sample``: keep only codes whose class
            posterior p(c | z) is at least ``min_posterior`` (True), or return the
            raw draws (False, the study's behaviour).
        min_posterior: the posterior a code drawn for class c needs to be kept.
        density_quantile: a code drawn for class c is kept only when log p(z | c) is
            at least this quantile of log p(z_i | c) over c's own training codes
            (0 switches the test off).
        min_acceptance: ``sample`` gives up, with an error, once it has drawn
            n / min_acceptance codes for a class without keeping n.
        far_quantile: ``check`` calls a code far when its log-density is below
            this quantile of the training codes' log-densities.
        max_iter: EM iterations of each mixture fit (scikit-learn's ``max_iter``).

    Attributes (after ``fit``): ``classes_`` (the labels, or ``[None]``),
    ``priors_`` (class frequencies), ``latent_dim_``, ``log_density_floor_``,
    ``class_log_densities_`` (per class, the sorted log p(z_i | c) of up to 2,000 of
    its training codes: where the class-density test puts its floor);
    after ``sample``: ``acceptance_rate_`` (codes kept / codes drawn) and
    ``acceptance_by_class_``.

    Example::

        sampler = GMMSampler("mixture", n_components=20, seed=0).fit(codes, labels)
        z = sampler.sample(100, label=7)      # (100, latent_dim) float32, all inside 7
        sampler.acceptance_rate_              # e.g. 0.93: 7% of the draws were redrawn
        raw = sampler.sample(100, label=7, inside_class=False)
        z = sampler.sample(100, label=7, round_trip=model)   # their images' codes too
    """

    def __init__(self, kind="gaussian", n_components=10, covariance_scale=1.0, seed=0,
                 reg_covar=1e-6, inside_class=True, min_posterior=0.9, density_quantile=0.01,
                 min_acceptance=0.01, far_quantile=0.01, max_iter=100):
        if kind not in KINDS:
            raise ValueError(f"GMMSampler: kind must be one of {KINDS}, got {kind!r}")
        if int(n_components) < 1:
            raise ValueError(f"GMMSampler: n_components must be at least 1, got {n_components}")
        if covariance_scale < 0:
            raise ValueError(f"GMMSampler: covariance_scale must be >= 0, got {covariance_scale}")
        if not 0 <= min_posterior <= 1:
            raise ValueError(f"GMMSampler: min_posterior is a probability in [0, 1], got "
                             f"{min_posterior}")
        if not 0 <= density_quantile < 1:
            raise ValueError(f"GMMSampler: density_quantile must be in [0, 1), got "
                             f"{density_quantile}")
        if not 0 < min_acceptance <= 1:
            raise ValueError(f"GMMSampler: min_acceptance must be in (0, 1], got "
                             f"{min_acceptance}")
        if not 0 <= far_quantile < 1:
            raise ValueError(f"GMMSampler: far_quantile must be in [0, 1), got {far_quantile}")
        self.kind = kind
        self.n_components = int(n_components)
        self.covariance_scale = float(covariance_scale)
        self.seed = seed
        self.reg_covar = float(reg_covar)
        self.inside_class = bool(inside_class)
        self.min_posterior = float(min_posterior)
        self.density_quantile = float(density_quantile)
        self.min_acceptance = float(min_acceptance)
        self.far_quantile = float(far_quantile)
        self.max_iter = int(max_iter)
        self.rng = numpy.random.default_rng(seed)
        self.classes_ = None
        self.acceptance_rate_ = None
        self.acceptance_by_class_ = {}

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
        self.components_, self._whiteners, self.class_log_densities_ = {}, {}, {}
        for label, group in groups.items():
            if self.kind == "gaussian":
                self.components_[label] = self._fit_gaussian(group, label)
            else:
                self.components_[label] = self._fit_mixture(group, label)
            self._whiteners[label] = _whiteners(self.components_[label][2])
        for label, group in groups.items():       # the floors of the class-density test
            scored = group[self.rng.permutation(len(group))[:_FLOOR_CODES]]
            self.class_log_densities_[label] = numpy.sort(self.class_log_density(scored, label))
        scored = codes[self.rng.permutation(len(codes))[:_FLOOR_CODES]]
        self.log_density_floor_ = float(numpy.quantile(self.log_density(scored),
                                                       self.far_quantile))
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
        if len(group) < 2:
            raise ValueError(f"GMMSampler.fit: class {label!r} has {len(group)} code, too few "
                             f"for a mixture of n_components={k}: every component needs a "
                             "covariance, and that takes at least 2 codes; give the class "
                             "more codes or leave it out")
        if k > len(group):
            warnings.warn(f"GMMSampler.fit: class {label!r} has only {len(group)} codes, fewer "
                          f"than n_components={k}; using {len(group)} components for it",
                          stacklevel=3)
            k = len(group)
        mixture = GaussianMixture(n_components=k, covariance_type="full", init_params="kmeans",
                                  reg_covar=self.reg_covar, max_iter=self.max_iter,
                                  random_state=int(self.rng.integers(2**31 - 1)))
        mixture.fit(group.astype(numpy.float64))
        return mixture.weights_, mixture.means_, mixture.covariances_

    # ------------------------------------------------------------------ densities
    def log_joint(self, codes):
        """log p(z | c) + log p(c) for every code and class: shape (n, len(classes_)).

        p(z | c) is the fitted density of class c (its covariances unscaled) and
        p(c) the class frequency seen in ``fit``.
        """
        codes = self._codes_to_score(codes)
        return numpy.stack([self.class_log_density(codes, label) for label in self.classes_],
                           axis=1) + numpy.log(self.priors_)

    def class_log_density(self, codes, label):
        """log p(z | c) of one class ``label`` for every code: shape (n,)."""
        codes = self._codes_to_score(codes)
        return _log_mixture_density(codes, *self.components_[label][:2], *self._whiteners[label])

    def class_log_density_floor(self, label):
        """The ``density_quantile`` of log p(z_i | label) over the class's own training codes:
        a code drawn for ``label`` below it lies where almost none of them lie."""
        if self.density_quantile == 0:
            return -math.inf
        return float(numpy.quantile(self.class_log_densities_[label], self.density_quantile))

    def posterior(self, codes):
        """p(c | z) = p(z | c) p(c) / sum_c' p(z | c') p(c'): shape (n, len(classes_))."""
        joint = self.log_joint(codes)
        return numpy.exp(joint - _logsumexp(joint)[:, None])

    def log_density(self, codes):
        """log p(z) = log sum_c p(z | c) p(c), the density of all the codes: shape (n,)."""
        return _logsumexp(self.log_joint(codes))

    def check(self, codes):
        """Which class each code lies in, how surely, and whether it is far from them all.

        ``codes`` may have any leading shape, (..., latent_dim): an interpolation
        (steps, d) or a batch of latent-arithmetic steps (n, len(scales), d). Returns
        a ``CodeCheck`` of arrays of that leading shape.

        Example::

            line = interpolate(mean_of_3, mean_of_8, steps=10)
            report = sampler.check(line)   # report.label: 3 3 3 3 5 5 8 8 8 8
            report.far                     # True where the line leaves the data
        """
        codes = _host_codes(codes, "codes", any_leading=True)
        leading = codes.shape[:-1]
        joint = self.log_joint(codes.reshape(-1, codes.shape[-1]))
        log_density = _logsumexp(joint)
        best = joint.argmax(axis=1)
        posterior = numpy.exp(joint[numpy.arange(len(joint)), best] - log_density)
        label = numpy.array([self.classes_[i] for i in best], dtype=object if
                            None in self.classes_ else None).reshape(leading)
        return CodeCheck(label, posterior.reshape(leading), log_density.reshape(leading),
                         (log_density < self.log_density_floor_).reshape(leading))

    def _codes_to_score(self, codes):
        if self.classes_ is None:
            raise RuntimeError("GMMSampler: call fit(codes, labels) first")
        codes = _host_codes(codes, "codes", allow_empty=True)
        if codes.shape[1] != self.latent_dim_:
            raise ValueError(f"GMMSampler: the codes have {codes.shape[1]} dimensions but the "
                             f"sampler was fitted on {self.latent_dim_}")
        return codes

    # ------------------------------------------------------------------ sampling
    def sample(self, n, label=None, return_labels=False, inside_class=None, round_trip=None):
        """Draw ``n`` codes (float32, shape (n, latent_dim)) from class ``label``.

        With ``label=None`` the class of each code is drawn from the class
        frequencies seen in ``fit`` (pass ``return_labels=True`` to get them).
        ``inside_class`` (default: the sampler's) keeps only codes whose
        posterior p(class | z) is at least ``min_posterior``, drawing more until
        ``n`` are kept; ``acceptance_rate_`` then says what share was kept.

        ``round_trip``: the autoencoder whose codes these are (or any function
        codes -> codes). A decoder can turn a code inside class c into an image
        that is no clear c; with ``round_trip`` the code of a kept code's image,
        z -> decode -> embed, must also have p(c | image's code) >= min_posterior.
        Only used when keeping codes inside their class.
        """
        if self.classes_ is None:
            raise RuntimeError("GMMSampler.sample: call fit(codes, labels) first")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"GMMSampler.sample: n is how many codes to draw, a whole number "
                             f">= 0; got {n!r}")
        n = int(n)
        inside = self.inside_class if inside_class is None else bool(inside_class)
        if label is None:
            labels = self.rng.choice(len(self.classes_), size=n, p=self.priors_)
            labels = numpy.array([self.classes_[i] for i in labels])
        else:
            if label not in self.components_:
                raise ValueError(f"GMMSampler.sample: no class {label!r}; the sampler was "
                                 f"fitted on classes {self.classes_}")
            labels = numpy.array([label] * n)
        codes = numpy.empty((n, self.latent_dim_), numpy.float32)
        self.acceptance_by_class_, accepted, drawn = {}, 0, 0
        for value in self.classes_:
            where = numpy.flatnonzero(labels == value) if value is not None else numpy.arange(n)
            if not len(where):
                continue
            if inside:
                codes[where], class_accepted, class_drawn = self._sample_inside(
                    value, len(where), round_trip)
                self.acceptance_by_class_[value] = class_accepted / class_drawn
                accepted, drawn = accepted + class_accepted, drawn + class_drawn
            else:
                codes[where] = self._sample_class(value, len(where))
        self.acceptance_rate_ = accepted / drawn if drawn else None
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

    def inside(self, codes, label):
        """Which codes lie inside class ``label``: p(label | z) >= min_posterior (another
        class's region is not c's) and log p(z | label) >= ``class_log_density_floor``
        (nor is a region where almost no training code of c lies). Boolean, shape (n,)."""
        in_region, dense = self._class_tests(codes, label)
        return in_region & dense

    def _class_tests(self, codes, label):
        """The two tests of ``inside``, apart: (posterior passed, class density passed)."""
        joint = self.log_joint(codes)
        column = self.classes_.index(label)
        own = joint[:, column]                                   # log p(z | c) + log p(c)
        dense = own - numpy.log(self.priors_[column]) >= self.class_log_density_floor(label)
        if len(self.classes_) == 1:                              # p(c | z) = 1
            return numpy.ones(len(own), bool), dense
        return numpy.exp(own - _logsumexp(joint)) >= self.min_posterior, dense

    def _sample_inside(self, label, n, round_trip=None):
        """Draw from class ``label`` until ``n`` codes lie inside it (``inside``), and, with
        ``round_trip``, the codes of their decoded images pass the posterior test too.

        Returns the n codes, how many drawn codes passed and how many were drawn.
        """
        if round_trip is not None and (hasattr(round_trip, "decode") or not callable(round_trip)):
            round_trip = _decode_and_embed(round_trip)      # a model (itself callable)
        budget = math.ceil(n / self.min_acceptance)
        kept, accepted, drawn = [], 0, 0
        while accepted < n:
            if drawn >= budget:
                raise RuntimeError(self._too_few_inside(label, n, accepted, drawn, round_trip))
            rate = (accepted + 1) / (drawn + 1)      # an estimate that starts at 1
            batch = min(budget - drawn, math.ceil(1.2 * (n - accepted) / rate) + 8)
            z = self._sample_class(label, batch)
            inside = self.inside(z, label)
            if round_trip is not None and inside.any():
                inside[inside] = self._passes_round_trip(z[inside], label, round_trip)
            kept.append(z[inside])
            accepted += int(inside.sum())
            drawn += batch
        return numpy.concatenate(kept)[:n], accepted, drawn

    def _passes_round_trip(self, z, label, round_trip):
        """Whether the code of each code's decoded image passes the posterior test.

        The image's code takes the posterior test only: codes of decoded images lie less
        dense than the training codes a mixture was fitted to, so the floor those set
        would throw most of them away (benchmarks/RESULTS.md)."""
        again = _host_codes(round_trip(z.astype(numpy.float32)), "round trip codes")
        return self._class_tests(again, label)[0]

    def _too_few_inside(self, label, n, accepted, drawn, round_trip):
        """The error of a class whose draws are too seldom kept, with which test failed."""
        z = self._sample_class(label, 1000)
        in_region, dense = self._class_tests(z, label)
        trip = ""
        if round_trip is not None and (in_region & dense).any():
            lost = 1 - self._passes_round_trip(z[in_region & dense], label, round_trip).mean()
            trip = (f"; of those that pass both, {lost:.0%} fail the posterior test after the "
                    "round trip (their decoded images' codes lie in another class's region: "
                    "the autoencoder may need more training)")
        return (f"GMMSampler.sample: only {accepted} of the {drawn} codes drawn for class "
                f"{label!r} lie inside it{' (also after the round trip)' if round_trip else ''}"
                f": an acceptance rate of {accepted / drawn:.2%}, below "
                f"min_acceptance={self.min_acceptance}, so {n} codes would take too many draws. "
                f"Of the codes drawn, {1 - in_region.mean():.0%} fall in another class's region "
                f"(p({label!r} | z) < min_posterior={self.min_posterior}; lower "
                f"covariance_scale or min_posterior) and {1 - dense.mean():.0%} where almost "
                f"none of the class's training codes lie (log p(z | {label!r}) below its "
                f"training codes' density_quantile={self.density_quantile}; lower "
                "covariance_scale, density_quantile or n_components: a mixture fitted to few "
                f"codes per component is denser at its training codes than at its own draws)"
                f"{trip}. inside_class=False gives the raw draws")

    def __repr__(self):
        fitted = f", classes={self.classes_}" if self.classes_ is not None else ""
        return (f"GMMSampler(kind={self.kind!r}, n_components={self.n_components}, "
                f"covariance_scale={self.covariance_scale}, inside_class={self.inside_class}"
                f"{fitted})")


def _decode_and_embed(model):
    """z -> model.embed(model.decode(z)) on host codes: the code of the image z decodes to."""
    if not (hasattr(model, "decode") and hasattr(model, "embed")):
        raise TypeError(f"GMMSampler.sample: round_trip must be an autoencoder (with decode and "
                        f"embed) or a function codes -> codes, got {type(model).__name__}")
    from .latent import decode_codes

    def round_trip(codes):
        return model.embed(decode_codes(model, codes)).numpy()
    return round_trip


def _whiteners(covariances):
    """For each covariance S = L L^T (Cholesky): L^-1 and log|S| = 2 sum log diag L."""
    factors = numpy.linalg.cholesky(covariances)
    log_dets = 2 * numpy.log(numpy.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
    return numpy.linalg.inv(factors), log_dets


def _log_mixture_density(codes, weights, means, inverse_factors, log_dets):
    """log sum_k w_k N(z; mu_k, S_k) for each row z of ``codes``, shape (n,).

    log N(z; mu, S) = -1/2 (d log 2 pi + log|S| + ||L^-1 (z - mu)||^2), with S = L L^T.
    """
    d = codes.shape[1]
    out = numpy.empty(len(codes))
    for start in range(0, len(codes), _SCORE_ROWS):
        z = codes[start:start + _SCORE_ROWS]
        # whitened = L_k^-1 (z - mu_k) for every component k: (K, rows, d)
        whitened = numpy.einsum("kij,knj->kni", inverse_factors, z[None] - means[:, None])
        log_normal = -0.5 * (d * math.log(2 * math.pi) + log_dets[:, None]
                             + (whitened ** 2).sum(axis=2))
        out[start:start + len(z)] = _logsumexp((log_normal + numpy.log(weights)[:, None]).T)
    return out


def _logsumexp(values):
    """log sum_j exp(values[:, j]), computed from the row's largest term so it cannot overflow."""
    largest = values.max(axis=1)
    largest = numpy.where(numpy.isfinite(largest), largest, 0.0)
    return largest + numpy.log(numpy.exp(values - largest[:, None]).sum(axis=1))


def _host_codes(codes, name, allow_empty=False, any_leading=False):
    """Codes as a float64 NumPy array (a Tensor is copied to the host): 2-D (n_codes,
    latent_dim), or (..., latent_dim) with ``any_leading``."""
    if hasattr(codes, "numpy") and not isinstance(codes, numpy.ndarray):
        codes = codes.numpy()
    codes = numpy.asarray(codes, dtype=numpy.float64)
    if any_leading:
        if codes.ndim < 1 or codes.size == 0:
            raise ValueError(f"GMMSampler: {name} must be a non-empty array (..., latent_dim), "
                             f"got shape {codes.shape}")
    elif codes.ndim != 2 or (len(codes) == 0 and not allow_empty):
        raise ValueError(f"GMMSampler: {name} must be a non-empty 2-D array (n_codes, "
                         f"latent_dim), got shape {codes.shape}")
    if not numpy.isfinite(codes).all():
        raise ValueError(f"GMMSampler: {name} contain NaN or Inf")
    return codes
