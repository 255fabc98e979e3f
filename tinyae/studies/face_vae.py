"""Study 5, face-vae: a convolutional VAE on faces, with latent arithmetic and morphing.

The Olivetti faces (400 images of 40 people, 64x64 grayscale) train a conv VAE:
4 convolutions (stride 2) with batch norm and LeakyReLU(0.2), 4 transposed
convolutions back, a sigmoid out. The loss is the per-pixel mean squared
error times a factor (10,000) plus the KL term, with Adam 5e-4. tinyae's VAE
sums the squared error over each image's 4,096 pixels, so the factor is
passed as ``r_loss_factor = 10000 / 4096``.

Latent arithmetic: the attribute vector is the mean code of one group of
people minus the mean code of another (by default people who wear glasses in
all their pictures minus people who never do); adding it in steps to a face
without glasses draws them on, subtracting it from a face with glasses takes
them off. Morphing decodes the line between two faces' codes.
"""
import numpy

from .. import data, plot
from ..data import Dataset
from ..models import attribute_vector, conv_vae, latent_arithmetic, morph
from ..errors import UsageError
from .outputs import losses_line
from .training import (RunSettings, decode_all, embed_all, fit, reconstruct_all,
                       seed_everything)

NAME = "face-vae"
TITLE = "convolutional VAE on the Olivetti faces: samples, latent arithmetic, morphing"

# Olivetti people (person = image index // 10) who wear glasses in all ten of their
# pictures, and people who wear none in any; the rest (3, 12, 16, 18, 19, 30) vary.
GLASSES = (1, 5, 13, 26, 27, 33, 36)
MIXED = (3, 12, 16, 18, 19, 30)
NO_GLASSES = tuple(p for p in range(40) if p not in GLASSES + MIXED)

FULL = dict(latent_dim=200, channels=(32, 64, 64, 64), mse_factor=10000.0, epochs=300,
            batch_size=32, lr=5e-4, limit=None, group_a=GLASSES, group_b=NO_GLASSES, seed=0)
QUICK = dict(FULL, epochs=40)
QUICK_NOTE = ("all 400 faces, 40 epochs: blurred faces that follow each picture's light and "
              "pose, not yet its features (the summary compares the reconstruction error with "
              "the mean face's); the glasses vector needs the full run; about a minute of CPU "
              "time")
FULL_NOTE = ("all 400 faces, 300 epochs (the glasses vector shows from about 200 on); "
             "about 1.3 s per epoch on one CPU core, some 6-7 minutes")


def add_arguments(parser):
    """The study's command-line options."""
    parser.add_argument("--latent-dim", type=int, metavar="D", help="latent size (default 200)")
    parser.add_argument("--mse-factor", type=float, metavar="F",
                        help="weight of the per-pixel mean squared error against the KL term "
                             "(default 10000)")
    parser.add_argument("--group-a", type=_people, metavar="IDS",
                        help="people (0-39, comma separated) with the attribute; default: "
                             f"the glasses wearers {','.join(map(str, GLASSES))}")
    parser.add_argument("--group-b", type=_people, metavar="IDS",
                        help="people without it; default: those who never wear glasses")


def _people(text):
    import argparse
    try:
        ids = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give person numbers 0-39 separated by commas, e.g. 1,5,13") from None
    if not ids or any(not 0 <= i < 40 for i in ids):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the Olivetti people are numbered 0 to 39")
    return ids


def run(settings, out):
    """Load the faces, train the conv VAE, draw arithmetic and morphs; returns the summary
    lines.
    """
    seed = settings["seed"]
    seed_everything(seed)
    dataset, group_a, group_b = load_faces(settings)
    model = conv_vae((1, 64, 64), channels=tuple(settings["channels"]),
                     latent_dim=settings["latent_dim"], loss="mse",
                     r_loss_factor=settings["mse_factor"] / (64 * 64))
    history = fit(model, dataset, RunSettings(settings["epochs"], settings["batch_size"],
                                              settings["lr"], seed,
                                              settings.get("progress", True)))
    plot.loss_curves(history, path=out.file("loss_curves.png"))
    draw_reconstructions_and_samples(model, dataset.x_train, seed, out)
    vector = draw_attribute_arithmetic(model, dataset, group_a, group_b, out)
    draw_morphs(model, dataset, out)
    error, mean_face_error = reconstruction_errors(model, dataset.x_train)
    return [
        f"data: {dataset.describe()}",
        f"model: conv_vae((1, 64, 64), channels={tuple(settings['channels'])}, "
        f"latent_dim={settings['latent_dim']}, loss='mse', r_loss_factor="
        f"{settings['mse_factor']:g}/4096), {model.num_parameters()} parameters",
        f"training: epochs={settings['epochs']}, batch_size={settings['batch_size']}, "
        f"Adam lr={settings['lr']}, seed={seed}",
        losses_line("VAE", history),
        f"reconstruction: mean squared error per pixel {error:.4f}; the mean face, the same "
        f"for every picture, scores {mean_face_error:.4f} (below it: the model tells faces "
        "apart)",
        f"attribute vector v: mean code of people {group_a} minus that of people {group_b} "
        f"(length {numpy.linalg.norm(vector):.2f})",
    ]


def load_faces(settings):
    """(Dataset of the Olivetti faces, people of group a, people of group b) among those used."""
    faces, people = data.load_olivetti_faces(settings.get("data_dir"))
    if settings["limit"] is not None:  # the first faces: whole people, ten pictures each
        faces, people = faces[:settings["limit"]], people[:settings["limit"]]
    present = set(people.tolist())
    group_a = [p for p in settings["group_a"] if p in present]
    group_b = [p for p in settings["group_b"] if p in present]
    if not group_a or not group_b:
        raise UsageError(f"--group-a {settings['group_a']} / --group-b {settings['group_b']}: "
                         f"each group needs at least one of the people used "
                         f"(0..{max(present)})")
    dataset = Dataset("olivetti", faces, people, classes=len(present),
                      note="all faces train the model (no held-out part)")
    return dataset, group_a, group_b


def draw_reconstructions_and_samples(model, faces, seed, out):
    """Faces beside their reconstructions, and faces decoded from the prior."""
    first_faces = faces[::10][:8]  # one picture of each of the first people
    plot.interpolation_strip([first_faces, reconstruct_all(model, first_faces, 64)],
                             row_labels=("original", "reconstructed"),
                             path=out.file("reconstructions.png"))
    rng = numpy.random.default_rng([seed, 5])
    plot.image_grid(model.sample(32, rng=rng).numpy(), nrow=8, path=out.file("samples.png"))


def draw_attribute_arithmetic(model, dataset, group_a, group_b, out):
    """Add the attribute vector to faces of group b, subtract it from group a; returns it."""
    faces, people = dataset.x_train, dataset.y_train
    codes = embed_all(model, faces, batch_size=64)
    vector = attribute_vector(codes[numpy.isin(people, group_a)],
                              codes[numpy.isin(people, group_b)])
    scales = (0.0, 0.5, 1.0, 1.5, 2.0)
    rows, row_labels = [], []
    for people_shown, sign, symbol in ((group_b[:3], 1, "+"), (group_a[:2], -1, "−")):
        for person in people_shown:
            index = numpy.flatnonzero(people == person)[0]
            steps = [sign * s for s in scales]
            rows.append([faces[index], *decode_all(model, latent_arithmetic(codes[index], vector,
                                                                             steps))])
            row_labels.append(f"person {person} {symbol} s·v")
    plot.arithmetic_rows(rows, ["original"] + [f"s = {s:g}" for s in scales],
                         row_labels=row_labels, path=out.file("attribute_arithmetic.png"))
    return vector


def draw_morphs(model, dataset, out):
    """Decoded straight lines between pairs of faces' codes."""
    faces, people = dataset.x_train, dataset.y_train
    pairs = [(0, 10 * 1), (10 * 2, 10 * 3), (10 * 4, 10 * 5)]
    pairs = [(a, b) for a, b in pairs if b < len(faces)]
    strips = [morph(model, faces[a], faces[b], steps=8) for a, b in pairs]
    plot.interpolation_strip(strips, row_labels=[f"{people[a]} → {people[b]}" for a, b in pairs],
                             path=out.file("morph.png"))


def reconstruction_errors(model, faces):
    """(the model's mean squared error per pixel, that of the mean face) on ``faces``."""
    error = float(((reconstruct_all(model, faces, 64) - faces) ** 2).mean())
    mean_face_error = float(((faces.mean(axis=0) - faces) ** 2).mean())
    return error, mean_face_error
