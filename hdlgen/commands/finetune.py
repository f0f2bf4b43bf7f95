"""``hdlgen finetune MODEL --data TRAIN.npz -o NET.ttfs`` – convert, then train the integer TTFS
net through its own arithmetic (:mod:`hdlgen.finetune`) and write the best epoch's net."""

from pathlib import Path

from .. import ttfs
from ..conversion import model_classes
from ..data import load_dataset
from ..errors import UserError
from ..evaluate import format_net
from ..files import write_atomically
from . import check_output, print_json
from .convert import add_calibration_options, conversion_config, convert_model, load_model_and_data, parse_ticks


def register(sub):
    p = sub.add_parser("finetune", help="convert, then fine-tune the integer TTFS net on training data (PyTorch)",
                       description="Convert a trained ReLU network as 'hdlgen convert' does, then train the integer "
                                   "TTFS net with the golden model's exact arithmetic and straight-through gradients "
                                   "(weights, K and the windows' scales), and write the best epoch's .ttfs net.")
    p.add_argument("model", help="model file: .pt2 (torch.export.save), .onnx or weight .npz")
    p.add_argument("--data", required=True, help="training data .npz with x (float) and y (labels); also calibrates "
                                                  "unless --calibration-data is given")
    p.add_argument("--validation-data", help="held-out .npz with labels: picks the best epoch (default: the training data)")
    p.add_argument("--ticks", default="16", help="window T of every spiking layer, or a comma list input,hidden… (default 16)")
    p.add_argument("--weight-bits", type=int, default=8, help="signed weight bits, 2..16 (default 8)")
    add_calibration_options(p)
    p.add_argument("--epochs", type=int, default=10, help="passes over the training data (default 10)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's peak learning rate, cosine decay (default 1e-3)")
    p.add_argument("--spikes-per-neuron", type=float, help="target mean of hidden spikes per neuron on the training data "
                                                          "(a penalty tuned until it is met)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run; the same seed repeats it (default 0)")
    p.add_argument("--threads", type=int, help="PyTorch CPU threads (default: PyTorch's; 1 is fastest on a busy machine)")
    p.add_argument("--save-model", help="also write the fine-tuned float model (.pt2, torch.export.save)")
    p.add_argument("-o", "--output", help="output .ttfs (default: MODEL with suffix .finetuned.ttfs)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def _spikes_table(net, result) -> str:
    names = ["input"] + [layer.name for layer in net.layers[:-1]]
    before, after = result.before.train["spikes_per_neuron"], result.after.train["spikes_per_neuron"]
    lines = [f"{'layer':<12}{'neurons':>8}{'T':>5}{'spikes/neuron before':>22}{'after':>8}   (training data)"]
    for name, size, ticks, b, a in zip(names, net.sizes, net.ticks, before, after):
        lines.append(f"{name:<12}{size:>8}{ticks:>5}{b:>22.3f}{a:>8.3f}")
    return "\n".join(lines)


def _epoch_line(hidden_spikes, net, epochs):
    def log(e):
        figures = [f"train {100 * e.train['snn_accuracy']:.2f} %"]
        if e.validation is not None:
            figures.append(f"validation {100 * e.validation['snn_accuracy']:.2f} %")
        figures.append(f"hidden spikes/neuron {hidden_spikes(net, e.train['spikes_per_neuron']):.3f}")
        loss = "converted" if e.loss is None else f"loss {e.loss:.4f}"
        print(f"epoch {e.epoch:>3}/{epochs}  {loss}  {'  '.join(figures)}  ({e.seconds:.1f} s)", flush=True)
    return log


def run(args):
    try:
        import torch  # fine-tuning is PyTorch's; the other commands do not need it
    except ImportError:
        raise UserError("hdlgen finetune needs PyTorch: pip install 'hdlgen[torch]'") from None
    from ..finetune import FinetuneOptions, finetune, hidden_spikes, torch_module

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    options = FinetuneOptions(args.epochs, args.batch_size, args.learning_rate, args.spikes_per_neuron, args.seed)
    model = Path(args.model)
    output = Path(args.output) if args.output else model.with_suffix(".finetuned.ttfs")
    check_output(output)    # both outputs before the training, not after it
    if args.save_model:
        check_output(args.save_model, "--save-model")
    graph, train, calibration = load_model_and_data(args)
    validation = load_dataset(args.validation_data, graph.input_shape, classes=model_classes(graph)) \
        if args.validation_data else None
    config = conversion_config(args, parse_ticks(args.ticks), args.weight_bits)
    net = convert_model(graph, calibration, args, config, name=model.stem)
    print(format_net(net))
    result = finetune(net, train, validation, calibration.x[:args.calibration_samples], config, options,
                      log=_epoch_line(hidden_spikes, net, args.epochs))
    ttfs.save(result.net, output)
    if args.save_model:
        module = torch_module(result.graph, net.input.shape)
        example = torch.zeros((1, *net.input.shape))
        write_atomically(args.save_model, lambda path: torch.export.save(torch.export.export(module, (example,)), path))
    print(f"chose epoch {result.chosen} of {args.epochs} ({result.seconds:.1f} s)")
    print(_spikes_table(net, result))
    if options.spikes_per_neuron is not None and not result.target_met:
        print(f"note: no epoch met --spikes-per-neuron {options.spikes_per_neuron} on the training data; "
              "wrote the most accurate one (more --epochs, or a higher target)")
    print(f"wrote {output}" + (f" and {args.save_model}" if args.save_model else ""))
    if args.json:
        after = result.after
        print_json({"output": str(output), "model_output": args.save_model, "chosen_epoch": result.chosen,
                    "seconds": round(result.seconds, 2), "spike_target": options.spikes_per_neuron,
                    "spike_target_met": result.target_met, "ticks": result.net.ticks,
                    "weight_bits": config.weight_bits,
                    "hidden_spikes_per_neuron": {"before": hidden_spikes(net, result.before.train["spikes_per_neuron"]),
                                                 "after": hidden_spikes(net, after.train["spikes_per_neuron"])},
                    "before": result.before.to_dict(), "after": after.to_dict(),
                    "epochs": [e.to_dict() for e in result.epochs]})
    return 0
