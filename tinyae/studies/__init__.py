"""The five studies tinyae reproduces, one module each, and the demo.

Each study module has

- ``NAME`` (its command-line name) and ``TITLE`` (one line);
- ``FULL``: settings close to the study's, and ``QUICK``: the same on a subset
  with few epochs, enough to show the study's point in about a minute (photo-vae's
  is a smoke run); ``QUICK_NOTE`` says what it shows;
- ``add_arguments(parser)``: its own command-line options;
- ``run(settings, out)``: train, draw the figures into ``out`` (an
  ``Outputs``), and return the lines of its summary.

From Python::

    from tinyae import studies
    out = studies.run("face-vae", "runs/faces", quick=True, data_dir="/data")
    out.files                      # every file written

From the shell: ``tinyae study face-vae --quick --data-dir /data --out runs/faces``.
"""
from ..errors import UsageError
from . import autoencoder_gmm, denoise_inpaint, face_vae, gan_vs_vae, photo_vae
from .outputs import Outputs

STUDIES = {module.NAME: module for module in
           (autoencoder_gmm, denoise_inpaint, gan_vs_vae, photo_vae, face_vae)}


def settings_for(name, quick=False, **overrides):
    """The settings study ``name`` runs with: FULL or QUICK, updated by ``overrides``
    (None values are ignored, so unset command-line options keep the defaults)."""
    module = _study(name)
    settings = dict(module.QUICK if quick else module.FULL)
    settings.update({key: value for key, value in overrides.items() if value is not None})
    settings["quick"] = bool(quick)
    return settings


def run(name, out, quick=False, **overrides):
    """Run study ``name`` writing into the folder ``out``; returns its ``Outputs``.

    ``overrides`` replace settings (``epochs=5``, ``data_dir="/data"``, ``seed=1``,
    ``progress=False``, and the study's own, see ``FULL`` of its module).
    """
    module = _study(name)
    settings = settings_for(name, quick, **overrides)
    outputs = out if isinstance(out, Outputs) else Outputs(out)
    lines = module.run(settings, outputs)
    header = [f"study: {module.NAME} ({module.TITLE})",
              f"mode: {'--quick: ' + module.QUICK_NOTE if quick else 'full settings'}"]
    outputs.write_summary(header + [""] + lines, title=f"tinyae study {module.NAME}")
    return outputs


def _study(name):
    if name not in STUDIES:
        raise UsageError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    return STUDIES[name]
