"""Prompt validation the way ComfyUI does it (0.3.64 and later (execution.py validate_prompt/validate_inputs).

The structure follows the real code on purpose: lookups that raise there (a link to a missing
node, a bad slot index) raise here too and become the same `exception_during_*` errors.
"""

from __future__ import annotations

import os
import traceback

from wanclip.sim.catalog import Catalog


def _error(type_: str, message: str, details: str, extra: dict | None = None) -> dict:
    return {"type": type_, "message": message, "details": details, "extra_info": extra or {}}


def _type_name(ex: BaseException) -> str:
    cls = type(ex)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _types_match(received, wanted) -> bool:
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in want or bool(got & want)


DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def _load_image_valid(catalog: Catalog, image) -> bool | str:
    """nodes.py LoadImage.VALIDATE_INPUTS: folder_paths.exists_annotated_filepath(image)."""
    if not os.path.exists(catalog.annotated_path(image)):
        return f"Invalid image file: {image}"
    return True


def _load_video_valid(catalog: Catalog, file) -> bool | str:
    """nodes_video.py LoadVideo.validate_inputs: the annotated file exists."""
    if not os.path.exists(catalog.annotated_path(file)):
        return f"Invalid video file: {file}"
    return True


def _vhs_video_valid(catalog: Catalog, video) -> bool | str:
    """VideoHelperSuite LoadVideoUpload.VALIDATE_INPUTS: folder_paths.exists_annotated_filepath."""
    if not os.path.exists(catalog.annotated_path(video)):
        return f"Invalid video file: {video}"
    return True


# Classes with a VALIDATE_INPUTS: the inputs its signature names skip the built-in range and combo
# checks (so LoadImage's `image` is never "not in list"); a non-True answer becomes one
# custom_validation_failed per named input (execution.py validate_inputs).
CUSTOM_VALIDATION = {"LoadImage": (("image",), _load_image_valid), "LoadVideo": (("file",), _load_video_valid),
                     "VHS_LoadVideo": (("video",), _vhs_video_valid)}


def _combo_options(input_type, extra: dict) -> list | None:
    """The allowed values of a combo: a V1 list, a V3 COMBO's `options`, a DynamicCombo's keys."""
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO" and not extra.get("multiselect"):
        return list(extra.get("options", []))
    if input_type == DYNAMIC_COMBO:
        return [o.get("key") for o in extra.get("options", [])]
    return None


def _coerce(input_type, val):
    converters = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    convert = converters.get(input_type) if isinstance(input_type, str) else None
    return convert(val) if convert else val


class _Validator:
    def __init__(self, catalog: Catalog, prompt: dict):
        self.catalog = catalog
        self.prompt = prompt
        self.validated: dict[str, tuple] = {}

    def node(self, unique_id) -> tuple:
        if unique_id in self.validated:
            return self.validated[unique_id]
        inputs = self.prompt[unique_id]["inputs"]
        class_type = self.prompt[unique_id]["class_type"]
        spec = self.catalog.inputs(class_type)
        errors: list[dict] = []
        valid = True
        custom = CUSTOM_VALIDATION.get(class_type)
        exempt = custom[0] if custom else ()
        for category in ("required", "optional"):
            for name, input_spec in spec.get(category, {}).items():
                ok = self._input(inputs, name, category, input_spec, errors, exempt=name in exempt)
                valid = valid and ok
        if custom:
            self._custom(class_type, inputs, *custom, errors)
        ret = (False, errors, unique_id) if errors or not valid else (True, [], unique_id)
        self.validated[unique_id] = ret
        return ret

    def _custom(self, class_type: str, inputs: dict, names: tuple, check, errors: list) -> None:
        """VALIDATE_INPUTS called with the literal values of the inputs it names. A missing one is
        the TypeError the real call raises (it becomes an exception_during_*validation error)."""
        args = {}
        for name in names:
            if name not in inputs:
                raise TypeError(f"{class_type}.VALIDATE_INPUTS() missing 1 required positional argument: '{name}'")
            if not isinstance(inputs[name], list):  # [inferred] a linked value is not known yet
                args[name] = inputs[name]
        if not args:
            return
        answer = check(self.catalog, **args)
        if answer is True:
            return
        for name in args:
            details = name if answer is False else f"{name} - {answer}"
            errors.append(_error("custom_validation_failed", "Custom validation failed for node", details,
                                 {"input_name": name}))

    def _input(self, inputs: dict, x: str, category: str, spec: list, errors: list, live_only: bool = False,
               exempt: bool = False) -> bool:
        """Checks one input; returns False only when a linked node is invalid.

        live_only: a DynamicCombo's nested input (`format.codec`), checked only when the prompt has it.
        exempt: named by the class's VALIDATE_INPUTS, so no range or combo check.
        """
        input_type = spec[0]
        extra = spec[1] if len(spec) > 1 else {}
        info = [input_type, extra]
        if x not in inputs:
            if category == "required" and not live_only:
                errors.append(_error("required_input_missing", "Required input is missing", x, {"input_name": x}))
            return True
        val = inputs[x]
        if isinstance(val, list):
            return self._link(x, val, input_type, info, errors)
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = inputs[x] = val["__value__"]
            val = inputs[x] = _coerce(input_type, val)
        except Exception as ex:  # noqa: BLE001 - any conversion failure is a validation error
            errors.append(_error(
                "invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                f"{x}, {val}, {ex}",
                {"input_name": x, "input_config": info, "received_value": val, "exception_message": str(ex)},
            ))
            return True
        if not exempt:
            self._range_and_list(x, val, input_type, extra, info, errors)
        if input_type == DYNAMIC_COMBO:
            return self._dynamic(inputs, x, val, extra, errors)
        return True

    def _dynamic(self, inputs: dict, x: str, val, extra: dict, errors: list) -> bool:
        """The picked option's inputs, under dotted ids (`format.codec`, `format.codec.encoding`).

        [inferred, drift §2] Like `_expand_schema_for_dynamic`, a nested input is only part of the
        schema when the prompt carries it, so an old graph without `format.codec` stays valid.
        """
        ok = True
        for option in extra.get("options", []):
            if option.get("key") != val:
                continue
            for category in ("required", "optional"):
                for name, nested in option.get("inputs", {}).get(category, {}).items():
                    ok = self._input(inputs, f"{x}.{name}", category, nested, errors, live_only=True) and ok
        return ok

    def _range_and_list(self, x, val, input_type, extra, info, errors) -> None:
        base = {"input_name": x, "input_config": info, "received_value": val}
        if "min" in extra and val < extra["min"]:
            errors.append(_error("value_smaller_than_min", f"Value {val} smaller than min of {extra['min']}", x, base))
        elif "max" in extra and val > extra["max"]:
            errors.append(_error("value_bigger_than_max", f"Value {val} bigger than max of {extra['max']}", x, base))
        elif (options := _combo_options(input_type, extra)) is not None and val not in options:
            # Like the real server, huge model lists are not echoed back.
            if len(options) > 20:
                list_info, config = f"(list of length {len(options)})", None
            else:
                list_info, config = str(options), info
            errors.append(_error(
                "value_not_in_list", "Value not in list", f"{x}: '{val}' not in {list_info}",
                {"input_name": x, "input_config": config, "received_value": val},
            ))

    def _link(self, x, val, input_type, info, errors) -> bool:
        if len(val) != 2:
            errors.append(_error(
                "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", x,
                {"input_name": x, "input_config": info, "received_value": val},
            ))
            return True
        o_id = val[0]
        o_class_type = self.prompt[o_id]["class_type"]  # KeyError for a missing node, as in ComfyUI
        received_type = self.catalog.return_types(o_class_type)[val[1]]
        if not _types_match(received_type, input_type):
            errors.append(_error(
                "return_type_mismatch", "Return type mismatch between linked nodes",
                f"{x}, received_type({received_type}) mismatch input_type({input_type})",
                {"input_name": x, "input_config": info, "received_type": received_type, "linked_node": val},
            ))
            return True
        try:
            return self.node(o_id)[0] is not False
        except Exception as ex:  # noqa: BLE001 - mirrors execution.py
            reasons = [_error(
                "exception_during_inner_validation", "Exception when validating inner node", str(ex),
                {"input_name": x, "input_config": info, "exception_message": str(ex),
                 "exception_type": _type_name(ex), "traceback": traceback.format_tb(ex.__traceback__),
                 "linked_node": val},
            )]
            self.validated[o_id] = (False, reasons, o_id)
            return False


def validate_prompt(catalog: Catalog, prompt: dict, partial_targets=None,
                    missing_node_type: bool = False) -> tuple[bool, dict | None, list, dict]:
    """Returns (ok, error, outputs_to_execute, node_errors) like execution.validate_prompt.

    missing_node_type: 0.38's error for an unknown class or a node without one (drift §1.1); the
    message and extra_info are the newer execution.py's as best known (inferred).
    """
    outputs: list[str] = []
    for x in prompt:
        node = prompt[x]
        if not isinstance(node, dict) or "class_type" not in node:
            if missing_node_type:
                return False, _missing_node(x, None, node), [], {}
            return False, _error("invalid_prompt", "Cannot execute because a node is missing the class_type property.", f"Node ID '#{x}'"), [], {}
        class_type = node["class_type"]
        if not catalog.has_class(class_type):
            if missing_node_type:
                return False, _missing_node(x, class_type, node), [], {}
            return False, _error("invalid_prompt", f"Cannot execute because node {class_type} does not exist.", f"Node ID '#{x}'"), [], {}
        if catalog.is_output(class_type) and (partial_targets is None or x in partial_targets):
            outputs.append(x)
    if not outputs:
        return False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}

    v = _Validator(catalog, prompt)
    good, errors, node_errors = [], [], {}
    for o in outputs:
        try:
            valid, reasons, _ = v.node(o)
        except Exception as ex:  # noqa: BLE001 - mirrors execution.py
            valid, reasons = False, [_error(
                "exception_during_validation", "Exception when validating node", str(ex),
                {"exception_type": _type_name(ex), "traceback": traceback.format_tb(ex.__traceback__)},
            )]
            v.validated[o] = (False, reasons, o)
        if valid is True:
            good.append(o)
            continue
        if reasons:
            errors.append((o, reasons))
        for node_id, (ok, why, _) in v.validated.items():
            if ok is not True and why:
                entry = node_errors.setdefault(node_id, {
                    "errors": why, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in errors for e in errs)
        return False, _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), [], node_errors
    return True, None, good, node_errors


def _missing_node(x, class_type, node) -> dict:
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title", class_type) if isinstance(meta, dict) else class_type
    if class_type is None:
        message = f"Node '#{x}' has no class_type. The workflow may be corrupted or a custom node is missing."
    else:
        message = f"Node '{title}' not found. The custom node may not be installed."
    return _error("missing_node_type", message, f"Node ID '#{x}'",
                  {"node_id": x, "class_type": class_type, "node_title": title})
