"""model.summary(): Keras's table (layer (type), output shape, params; with show_trainable a
Trainable column: Y / N for a layer with weights, - without, as keras/src/utils/summary_utils.py)
ending with the Total / Trainable / Non-trainable counts."""
from __future__ import annotations


def _shape(shape):
    return "(None, " + ", ".join(str(s) for s in shape) + ")"


def _trainable_counts(model):
    trainable = sum(w.size for w in model.trainable_weights)
    total = model.count_params()
    return total, trainable, total - trainable


def _trainable_mark(layer):
    if not layer._weights and not getattr(layer, "layers", None):
        return "-"
    return "Y" if layer.trainable else "N"


def summary(model, print_fn=print, line_length=98, show_trainable=False):
    names = [f" {l.name} ({type(l).__name__})" for l in model.layers]
    widths = (max(40, max(len(n) for n in names) + 2), 28, 14)
    extra = 12 if show_trainable else 0
    line_length = max(line_length, sum(widths) + extra)
    rule = "_" * line_length
    header = " Layer (type)".ljust(widths[0]) + "Output Shape".ljust(widths[1]) + "Param #".rjust(widths[2])
    if show_trainable:
        header += "Trainable".center(extra)
    lines = [f'Model: "{model.name}"', rule, header, "=" * line_length]
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Model":
            kind = "Functional"
        name = f" {layer.name} ({kind})"
        row = (name.ljust(widths[0]) + _shape(layer.output_shape).ljust(widths[1])
               + f"{layer.count_params():,}".rjust(widths[2]))
        if show_trainable:
            row += _trainable_mark(layer).center(extra)
        lines.append(row)
        lines.append("")
    lines[-1] = "=" * line_length
    total, trainable, non = _trainable_counts(model)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {non:,}", rule]
    for line in lines:
        print_fn(line)
