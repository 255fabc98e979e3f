"""The names the studies, the demo and the command line once took from here.

The rest of what lived here has moved where its name says, and is imported
here so that ``from tinyae.studies.common import X`` keeps working:

- data sets by name (``load_dataset``, ``Dataset``, ...): ``tinyae.data``;
- the model file (``save_model``, ``load_model``, ``sample_images``, ...):
  ``tinyae.models.modelfile``;
- the bar chart: ``tinyae.plot.bar_chart``;
- output folders and summary lines (``Outputs``, ``losses_line``, ...):
  ``tinyae.studies.outputs``;
- training and maps over a data set (``fit``, ``RunSettings``, ``embed_all``,
  ...): ``tinyae.studies.training``.
"""
from ..errors import UsageError  # noqa: F401  (tinyae.errors: the one user-error class)
from ..data import (DATA_NAMES, Dataset, limit_examples, load_dataset,  # noqa: F401
                    load_mnist_pair, parse_data_name)
from ..models.modelfile import (BUILDERS, MODEL_FORMAT, MODEL_VERSION,  # noqa: F401
                                build_model, describe_record, find_model_file, load_model,
                                sample_images, save_model)
from ..plot import bar_chart  # noqa: F401
from .outputs import Outputs, losses_line, plural, settings_text  # noqa: F401
from .training import (EPOCH_LINES_UP_TO, EpochBar, RunSettings,  # noqa: F401
                       decode_all, embed_all, evaluation_mode, fit, reconstruct_all,
                       samples_by_class, seed_everything)
