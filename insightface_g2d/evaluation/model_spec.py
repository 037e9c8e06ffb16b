"""Model arguments on the command line: "LABEL=SPEC", SPEC as `embedders.factory.build_embedder`
takes it ("network:checkpoint", "model.onnx", "dlib")."""
from ..errors import ConfigError


def parse_model_arg(text):
    """"LABEL=SPEC" or "SPEC" -> (label, spec). Without a label the spec itself is the label.

    A label contains no path separator and no ':', so "g2d:runs/a=b/model.pt" stays one spec.
    """
    text = str(text).strip()
    if not text:
        raise ConfigError("empty --model value; give NETWORK:CHECKPOINT or a .onnx path, optionally LABEL=...")
    head, sep, tail = text.partition("=")
    if sep and head and tail and not any(c in head for c in "/\\:"):
        return head, tail
    if sep and not tail:
        raise ConfigError(f"--model {text!r} has a label but no model after '='")
    return text, text


def unique_labels(labels):
    """Raise ConfigError when two models share a label (their rows would be indistinguishable)."""
    seen = set()
    for label in labels:
        if label in seen:
            raise ConfigError(f"two models are labelled {label!r}; name them with LABEL=SPEC")
        seen.add(label)
