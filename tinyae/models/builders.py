"""The stacks of layers the model builders (``mlp_autoencoder``, ``conv_vae``, ``dcgan``,
...) are made of: activation layers by name, Dense stacks, and convolutional encoders
with their mirrored transposed-convolution decoders, sized so the decoder gives back
exactly the input's height and width.
"""
from kernels import conv_output_size  # Conv2d's output size along one axis
from .. import nn

ACTIVATION_LAYERS = {  # name -> a maker of a new activation layer (builders take names)
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def activation_layer(name):
    """A new activation layer by name, or None for "linear"/None (no activation)."""
    if name in (None, "linear"):
        return None
    if name not in ACTIVATION_LAYERS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_LAYERS)} "
                         "or None")
    return ACTIVATION_LAYERS[name]()


def mlp_layers(sizes, activation, last_activation, batch_norm=False):
    """Dense layers sizes[0] -> sizes[1] -> ... with ``activation`` between them and
    ``last_activation`` after the last (a list of layers for Sequential). With
    ``batch_norm``, a BatchNorm1d sits between each inner Dense and its activation
    (not after the last layer, which is a code or an output)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Dense(n_in, n_out))
        last = i == len(sizes) - 2
        if batch_norm and not last:
            layers.append(nn.BatchNorm1d(n_out))
        act = activation_layer(last_activation if last else activation)
        if act is not None:
            layers.append(act)
    return layers


def split_hidden(hidden, latent_dim):
    """(encoder hidden sizes, code size, decoder hidden sizes) from a builder's ``hidden``.

    If ``hidden`` has an odd length and its middle entry is ``latent_dim`` (or
    ``latent_dim`` is None), it is the whole stack as written in the study,
    encoder and decoder: [512, 128, 32, 128, 512]. Otherwise it lists the
    encoder's hidden layers and the decoder mirrors them: [512, 128] with
    latent_dim=32 builds the same network.
    """
    hidden = [int(n) for n in hidden]
    middle = len(hidden) // 2
    if len(hidden) % 2 == 1 and (latent_dim is None or hidden[middle] == latent_dim):
        return hidden[:middle], hidden[middle], hidden[middle + 1:]
    if latent_dim is None:
        raise ValueError(f"hidden={hidden} has no middle (code) layer; give latent_dim, or "
                         "list the whole stack with the code in the middle, e.g. "
                         "[512, 128, 32, 128, 512]")
    return hidden, int(latent_dim), hidden[::-1]


def transposed_output_padding(target, size, kernel_size, stride, padding):
    """The output_padding that makes ConvTranspose2d map ``size`` back to exactly ``target``.

    ConvTranspose2d gives (size - 1) stride - 2 padding + kernel + output_padding.
    """
    padding_needed = target - ((size - 1) * stride - 2 * padding + kernel_size)
    if not 0 <= padding_needed < stride:
        raise ValueError(f"a transposed convolution (kernel {kernel_size}, stride {stride}, "
                         f"padding {padding}) cannot map {size} back to {target} pixels; "
                         "choose another kernel_size/padding")
    return padding_needed


def conv_encoder_stack(input_shape, channels, kernel_size=3, stride=2, padding=1):
    """Conv2d + BatchNorm2d + LeakyReLU(0.2) per entry of ``channels``, then Flatten.

    Returns (Sequential, feature_dim, sizes) where ``sizes`` lists the (H, W) after
    each convolution, starting with the input's.
    """
    c, h, w = conv_image_shape(input_shape)
    layers, sizes = [], [(h, w)]
    for out_channels in channels:
        layers += [nn.Conv2d(c, out_channels, kernel_size, stride=stride, padding=padding),
                   nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2)]
        h, w = (conv_output_size(h, kernel_size, stride, padding),
                conv_output_size(w, kernel_size, stride, padding))
        if h < 1 or w < 1:
            raise ValueError(f"{len(channels)} stride-{stride} convolutions shrink a "
                             f"{input_shape[1]}x{input_shape[2]} image to nothing; use fewer "
                             "channels entries")
        sizes.append((h, w))
        c = out_channels
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c * h * w, sizes


def conv_decoder_stack(latent_dim, input_shape, channels, sizes, kernel_size=3, stride=2,
                       padding=1, out_activation="sigmoid"):
    """The mirror of ``conv_encoder_stack``: Dense + Reshape, then one ConvTranspose2d per
    convolution (BatchNorm2d + LeakyReLU(0.2) after all but the last, which ends in
    ``out_activation``), each output_padding chosen so the sizes retrace ``sizes`` exactly.
    """
    c_in = conv_image_shape(input_shape)[0]
    h, w = sizes[-1]
    layers = [nn.Dense(latent_dim, channels[-1] * h * w), nn.Reshape(channels[-1], h, w)]
    targets = list(reversed(sizes[:-1]))                  # the sizes to climb back to
    outs = list(reversed(channels[:-1])) + [c_in]         # channels after each transpose
    ins = list(reversed(channels))
    for i, ((th, tw), c_from, c_to) in enumerate(zip(targets, ins, outs)):
        h_pad = transposed_output_padding(th, h, kernel_size, stride, padding)
        w_pad = transposed_output_padding(tw, w, kernel_size, stride, padding)
        layers.append(nn.ConvTranspose2d(c_from, c_to, kernel_size, stride=stride,
                                         padding=padding, output_padding=(h_pad, w_pad)))
        if i < len(targets) - 1:
            layers += [nn.BatchNorm2d(c_to), nn.LeakyReLU(0.2)]
        else:
            act = activation_layer(out_activation)
            if act is not None:
                layers.append(act)
        h, w = th, tw
    return nn.Sequential(*layers)


def conv_image_shape(input_shape):
    """``input_shape`` as a (channels, height, width) tuple of ints, or a ValueError."""
    shape = tuple(int(n) for n in input_shape)
    if len(shape) != 3:
        raise ValueError(f"a convolutional model needs input_shape=(channels, height, width), "
                         f"got {input_shape!r}")
    return shape
