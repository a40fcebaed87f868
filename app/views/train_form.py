"""The Train view's settings form: a family and a preset, then what the
engineer changes, collected as the core's
:class:`~inspection_core.usecases.train_settings.TrainSettings` (the same
settings ``inspector train`` takes, laid over the preset the same way).

Choosing a family or a preset fills every field with the preset's values;
fields that do not apply to the family are hidden (a one-pass family such as
PatchCore has no update budget, learning rate, schedule or augmentation; only
families with pretrained start weights show the backbone and weights rows).
What the families and presets are is read on a worker (the registry imports
torch) by :func:`model_catalogue`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
    QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from app.widgets import theme
from app.widgets.wrap_label import WrapLabel
from inspection_core.config import COMMON_IMAGE_SIZES
from inspection_core.usecases.train_settings import TrainSettings

#: augmentation settings (``TrainConfig.augment``): name -> (label, maximum, step, suffix); None: a switch
AUGMENTATION: dict[str, tuple[str, float, float, str] | None] = {
    "hflip": None, "vflip": None, "rot90": None,
    "rotate": ("Rotate within ±", 180.0, 1.0, " °"), "shift": ("Shift within ±", 0.5, 0.01, " of the side"),
    "brightness": ("Brightness ±", 1.0, 0.01, ""), "contrast": ("Contrast ±", 0.9, 0.01, ""),
}
SWITCH_TEXT = {"hflip": "Mirror left-right", "vflip": "Mirror top-bottom", "rot90": "Rotate by 90°"}
WEIGHT_CHOICES = {"imagenet": "ImageNet (torch's cache)", "file": "Local weights file", "scratch": "From scratch"}
#: the family the form starts with: the one to use on real parts (docs/quality.md:
#: the best image AUROC on the shared data sets, fitted in a minute or two on a CPU)
DEFAULT_FAMILY = "patchcore"
#: how the families are named where a user reads them
FAMILY_NAMES = {"patchcore": "PatchCore", "ganomaly": "GANomaly", "skip-ganomaly": "Skip-GANomaly",
                "bigan": "BiGAN", "vgg16": "VGG16 classifier"}


def family_name(key: str) -> str:
    """A family's name for a user ("GANomaly" for ``ganomaly``)."""
    return FAMILY_NAMES.get(key, key)


def family_names() -> str:
    """Every family with a training recipe, named for a user, the default
    first: "PatchCore, GANomaly, …, and VGG16 classifier" (no torch import)."""
    from inspection_core.recipes import RECIPES

    keys = sorted(RECIPES, key=lambda k: (k != DEFAULT_FAMILY, list(FAMILY_NAMES).index(k) if k in FAMILY_NAMES else 99))
    names = [family_name(k) for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def model_catalogue(_progress: Any = None, _cancel: Any = None) -> dict[str, Any]:
    """Every family (how it trains, its parameters, its presets resolved by
    ``recipes.resolve``) and every backbone (where torch caches its ImageNet
    weights, whether they are there). Runs on a worker: it imports torch."""
    from inspection_core.backbones import BACKBONES, hub_checkpoint_path, weights_entry
    from inspection_core.models import available_models, model_class
    from inspection_core.recipes import PRESETS, RECIPES, resolve

    models = {}
    for name in available_models():
        cls = model_class(name)
        presets = {}
        for preset in PRESETS if name in RECIPES else ():
            m, t = resolve(name, preset)
            presets[preset] = {"model": m.to_dict(), "train": t.to_dict()}
        models[name] = {"supervised": cls.supervised, "can_generate": cls.can_generate, "fit_mode": cls.fit_mode,
                        "weights_param": cls.weights_param, "scratch_weights": cls.scratch_weights,
                        "params": cls.default_params(), "help": cls.param_help(), "presets": presets}
    backbones = {}
    for name in BACKBONES:
        cache = hub_checkpoint_path(name)
        backbones[name] = {"cache": str(cache), "cached": cache.is_file(), "url": weights_entry(name).url}
    return {"models": models, "backbones": backbones}


def _float_spin(lo: float, hi: float, step: float, decimals: int, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox(minimum=lo, maximum=hi, singleStep=step, decimals=decimals)
    s.setSuffix(suffix)
    return s


class ParamEditor(QWidget):
    """One editor per family parameter, typed by its default (switch, whole
    number, number, text, list as comma-separated text)."""

    changed = Signal()

    def __init__(self, name: str, default: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name, self.default = name, default
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        if isinstance(default, bool):
            self.editor: QWidget = QCheckBox()
            self.editor.toggled.connect(self.changed)
        elif isinstance(default, int):
            self.editor = QSpinBox(minimum=0, maximum=1_000_000)
            self.editor.valueChanged.connect(self.changed)
        elif isinstance(default, float):
            self.editor = _float_spin(0.0, 1e6, 0.05, 4)
            self.editor.valueChanged.connect(self.changed)
        else:
            self.editor = QLineEdit()
            self.editor.textChanged.connect(self.changed)
            if isinstance(default, list):
                self.editor.setPlaceholderText("comma-separated; empty: the default")
        lay.addWidget(self.editor)

    def set_value(self, value: Any) -> None:
        e = self.editor
        if isinstance(e, QCheckBox):
            e.setChecked(bool(value))
        elif isinstance(e, (QSpinBox, QDoubleSpinBox)):
            e.setValue(value)
        elif isinstance(self.default, list):
            e.setText(", ".join(str(v) for v in value or []))
        else:
            e.setText("" if value is None else str(value))

    def value(self) -> Any:
        e = self.editor
        if isinstance(e, QCheckBox):
            return e.isChecked()
        if isinstance(e, QSpinBox):
            return int(e.value())
        if isinstance(e, QDoubleSpinBox):
            return float(e.value())
        text = e.text().strip()
        if isinstance(self.default, list):
            return [part.strip() for part in text.split(",") if part.strip()]
        return text


class TrainForm(QWidget):
    """See the module docstring."""

    changed = Signal()  # the family (or its fit mode) changed: the view adapts its plots
    edited = Signal()   # any setting changed (the view estimates the run's time again)

    #: family parameters with their own row (or none: the learning rate is the training row's)
    OWN_ROWS = ("backbone", "lr")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models: dict[str, dict[str, Any]] = {}
        self.backbones: dict[str, dict[str, Any]] = {}
        self.param_editors: dict[str, ParamEditor] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._build_model())
        lay.addWidget(self._build_training())
        lay.addWidget(self._build_augmentation())
        self.params_box = QGroupBox("Model parameters")
        self.params_form = QFormLayout(self.params_box)
        lay.addWidget(self.params_box)
        lay.addWidget(self._build_run())
        self._show_rows()
        self._watch_edits()

    # ------------------------------------------------------------------ layout
    def _build_model(self) -> QGroupBox:
        box = QGroupBox("Model")
        self.model_form = form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.setPlaceholderText("loading the model list…")
        self.model_combo.currentTextChanged.connect(self._on_model)
        form.addRow("Model:", self.model_combo)
        self.model_note = WrapLabel("")
        theme.set_tone(self.model_note, "hint")
        form.addRow("", self.model_note)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("quick: a short check of data and pipeline; standard: the measured default; "
                                     "thorough: a longer run. Every field below starts at the preset's value.")
        self.preset_combo.currentTextChanged.connect(lambda _t: self.apply_preset())
        form.addRow("Preset:", self.preset_combo)
        self.size_combo = QComboBox()
        self.size_combo.addItems([str(s) for s in COMMON_IMAGE_SIZES])
        form.addRow("Image size (px):", self.size_combo)
        self.normalize_combo = QComboBox()
        self.normalize_combo.addItem("none", "none")
        self.normalize_combo.addItem("per image (mean, std)", "mean_std")
        self.normalize_combo.setToolTip("Illumination normalisation in the preprocessing (recorded in the bundle, "
                                        "applied identically when inspecting): each image's brightness and contrast "
                                        "are set to the same mean and spread, so a lighting change is not a defect.")
        form.addRow("Normalisation:", self.normalize_combo)
        self.backbone_combo = QComboBox()
        self.backbone_combo.currentTextChanged.connect(lambda _t: self._show_weights_note())
        form.addRow("Backbone:", self.backbone_combo)
        row = QHBoxLayout()
        self.weights_combo = QComboBox()
        self.weights_combo.currentIndexChanged.connect(lambda _i: self._show_weights_note())
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("a .pth state dict of the backbone")
        self.weights_edit.textChanged.connect(lambda _t: self._show_weights_note())
        self.weights_browse = QPushButton("Browse…", clicked=self._browse_weights)
        row.addWidget(self.weights_combo)
        row.addWidget(self.weights_edit, 1)
        row.addWidget(self.weights_browse)
        self.weights_row = QWidget()
        self.weights_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Start weights:", self.weights_row)
        self.weights_note = WrapLabel("")
        self.weights_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("", self.weights_note)
        return box

    def _build_training(self) -> QGroupBox:
        box = QGroupBox("Training")
        self.train_form = form = QFormLayout(box)
        budget = QHBoxLayout()
        self.budget_combo = QComboBox()
        self.budget_combo.addItem("Epochs", "epochs")
        self.budget_combo.addItem("Updates", "updates")
        self.budget_combo.setToolTip("epochs: passes over the data; updates: optimiser steps (GANs need a few hundred)")
        self.budget_spin = QSpinBox(minimum=1, maximum=1_000_000, value=15)
        budget.addWidget(self.budget_combo)
        budget.addWidget(self.budget_spin, 1)
        self.budget_row = QWidget()
        self.budget_row.setLayout(budget)
        budget.setContentsMargins(0, 0, 0, 0)
        form.addRow("Budget:", self.budget_row)
        self.batch_spin = QSpinBox(minimum=1, maximum=1024, value=32)
        form.addRow("Batch size:", self.batch_spin)
        self.lr_spin = _float_spin(1e-6, 1.0, 1e-4, 6)
        self.lr_spin.setToolTip("learning rate (the classifier's own optimiser reads it too)")
        form.addRow("Learning rate:", self.lr_spin)
        self.schedule_combo = QComboBox()
        self.schedule_combo.addItems(["constant", "cosine"])
        form.addRow("Schedule:", self.schedule_combo)
        return box

    def _build_augmentation(self) -> QGroupBox:
        self.augment_box = box = QGroupBox("Augmentation (training images only)")
        form = QFormLayout(box)
        self.augment: dict[str, QWidget] = {}
        for name, spec in AUGMENTATION.items():
            if spec is None:
                w: QWidget = QCheckBox(SWITCH_TEXT[name])
                form.addRow("", w)
            else:
                label, hi, step, suffix = spec
                w = _float_spin(0.0, hi, step, 2, suffix)
                form.addRow(label + ":", w)
            self.augment[name] = w
        return box

    def _build_run(self) -> QGroupBox:
        box = QGroupBox("Run")
        form = QFormLayout(box)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        self.device_combo.setToolTip("auto: the GPU when there is one, else the CPU")
        form.addRow("Device:", self.device_combo)
        self.fast_cpu_check = QCheckBox("Fast CPU training (bf16)")
        self.fast_cpu_check.setToolTip(
            "bf16 mixed precision and channels-last on the CPU: about 2x faster per epoch on CPUs whose\n"
            "bf16 is fast (measured 2.06x at 128 px), slower on the others. The weights differ slightly\n"
            "from an fp32 run. On by default for the GAN families where this CPU's bf16 convolutions\n"
            "measure faster than fp32 (checked at start); off for the classifier.")
        form.addRow("", self.fast_cpu_check)
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        form.addRow("Seed:", self.seed_spin)
        return box

    # ------------------------------------------------------------------ catalogue and presets
    def set_catalogue(self, catalogue: dict[str, Any]) -> None:
        """Fill the form from :func:`model_catalogue` (called once it arrives)."""
        self.models, self.backbones = catalogue["models"], catalogue["backbones"]
        self.backbone_combo.addItems(list(self.backbones))
        self.model_combo.addItems(list(self.models))
        if DEFAULT_FAMILY in self.models:
            self.model_combo.setCurrentText(DEFAULT_FAMILY)
        self._on_model(self.model_combo.currentText())

    @property
    def info(self) -> dict[str, Any]:
        return self.models.get(self.model_combo.currentText()) or {}

    @property
    def one_pass(self) -> bool:
        return self.info.get("fit_mode") == "one_pass"

    def _on_model(self, name: str) -> None:
        info = self.models.get(name)
        if info is None:
            self.model_note.setText("")
            return
        notes = []
        if info["supervised"]:
            notes.append("supervised: needs defective images (test/<defect> or defect/ folders) to train")
        if info["fit_mode"] == "one_pass":
            notes.append("no training loop: every training image passes once through a frozen backbone")
        if info["can_generate"]:
            notes.append("can draw samples from random latents")
        self.model_note.setText("; ".join(notes))
        self.model_form.setRowVisible(self.model_note, bool(notes))
        presets = list(info["presets"])
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItems(presets)
        if "standard" in presets:
            self.preset_combo.setCurrentText("standard")
        self.preset_combo.blockSignals(False)
        self._build_params(info)
        self.weights_combo.blockSignals(True)
        self.weights_combo.clear()
        for key, text in WEIGHT_CHOICES.items():
            if key != "scratch" or info["scratch_weights"] is not None:
                self.weights_combo.addItem(text, key)
        self.weights_combo.blockSignals(False)
        self.apply_preset()
        self._show_rows()
        self.changed.emit()

    def _build_params(self, info: dict[str, Any]) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_editors = {}
        skip = {*self.OWN_ROWS, info["weights_param"]}
        for name, default in info["params"].items():
            if name in skip:
                continue
            editor = ParamEditor(name, default)
            editor.changed.connect(self.edited)
            editor.setToolTip(info.get("help", {}).get(name, ""))
            self.param_editors[name] = editor
            self.params_form.addRow(name + ":", editor)
            label = self.params_form.labelForField(editor)
            if label is not None:
                label.setToolTip(editor.toolTip())
        self.params_box.setVisible(bool(self.param_editors))

    def apply_preset(self) -> None:
        """Every field to the chosen preset's value."""
        info = self.info
        preset = (info.get("presets") or {}).get(self.preset_combo.currentText())
        if preset is None:
            return
        m, t = preset["model"], preset["train"]
        params = {**info["params"], **m["params"]}  # the preset's value of every parameter
        self.size_combo.setCurrentText(str(m["image_size"]))
        self.normalize_combo.setCurrentIndex(max(0, self.normalize_combo.findData(m.get("normalize", "none"))))
        if t.get("updates"):
            self.budget_combo.setCurrentIndex(self.budget_combo.findData("updates"))
            self.budget_spin.setValue(int(t["updates"]))
        else:
            self.budget_combo.setCurrentIndex(self.budget_combo.findData("epochs"))
            self.budget_spin.setValue(int(t["epochs"]))
        self.batch_spin.setValue(int(t["batch_size"]))
        self.fast_cpu_check.setChecked(bool(t.get("cpu_bf16")))  # this machine's default for the family
        self.lr_spin.setValue(float(params.get("lr", t["lr"])))
        self.schedule_combo.setCurrentText(t["lr_schedule"])
        for name, w in self.augment.items():
            value = (t.get("augment") or {}).get(name, False if AUGMENTATION[name] is None else 0.0)
            w.setChecked(bool(value)) if isinstance(w, QCheckBox) else w.setValue(float(value))
        for name, editor in self.param_editors.items():
            editor.set_value(params.get(name, editor.default))
        if "backbone" in params:
            self.backbone_combo.setCurrentText(str(params["backbone"]))
        wp = info.get("weights_param")
        if wp:
            start = str(params.get(wp, "imagenet"))
            key = "imagenet" if start == "imagenet" else "scratch" if start == info.get("scratch_weights") else "file"
            self.weights_combo.setCurrentIndex(max(0, self.weights_combo.findData(key)))
            self.weights_edit.setText("" if key != "file" else start)
        self._show_weights_note()

    # ------------------------------------------------------------------ what applies
    def _show_rows(self) -> None:
        info = self.info
        updates = not self.one_pass
        for w in (self.budget_row, self.lr_spin, self.schedule_combo):
            self.train_form.setRowVisible(w, updates)
        self.augment_box.setVisible(updates)
        self.model_form.setRowVisible(self.backbone_combo, "backbone" in info.get("params", {}))
        has_weights = bool(info.get("weights_param"))
        self.model_form.setRowVisible(self.weights_row, has_weights)
        self.model_form.setRowVisible(self.weights_note, has_weights)

    def _weights_choice(self) -> str:
        return self.weights_combo.currentData() or "imagenet"

    def _show_weights_note(self) -> None:
        choice = self._weights_choice()
        self.weights_edit.setVisible(choice == "file")
        self.weights_browse.setVisible(choice == "file")
        backbone = self.backbone_combo.currentText() if "backbone" in self.info.get("params", {}) else None
        b = self.backbones.get(backbone or "")
        text, warn = "", False
        if choice == "imagenet" and b is not None:
            if b["cached"]:
                text = f"ImageNet weights of {backbone}: in torch's cache ({b['cache']})."
            else:
                warn = True
                text = (f"The ImageNet weights of {backbone} are not in torch's cache (expected at {b['cache']}): "
                        f"training downloads them first, which needs internet. Offline: download {b['url']} "
                        "on another machine and put the file there, or choose a local weights file.")
        elif choice == "file":
            path = self.weights_edit.text().strip()
            if not path:
                text, warn = "Choose the weights file (a state dict of the backbone).", True
            elif not Path(path).expanduser().is_file():
                text, warn = f"'{path}' does not exist.", True
        elif choice == "scratch":
            text = "Random start weights: far from the intended use, for experiments only."
        self.weights_note.setText(text)
        theme.set_tone(self.weights_note, "warn" if warn else "hint")

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Backbone weights", self.weights_edit.text(),
                                              "PyTorch weights (*.pth *.pt);;All files (*)")
        if path:
            self.weights_edit.setText(path)

    def use_weights_file(self, path: str | Path) -> bool:
        """Start from the local weights file ``path`` (the next Start uses it);
        False where the family has no pretrained part."""
        i = self.weights_combo.findData("file")
        if i < 0 or not self.info.get("weights_param"):
            return False
        self.weights_combo.setCurrentIndex(i)
        self.weights_edit.setText(str(path))
        return True

    def _watch_edits(self) -> None:
        """Every input says when it changes (``edited``)."""
        for w in self.findChildren(QWidget):
            if isinstance(w, QComboBox):
                w.currentIndexChanged.connect(self.edited)
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.valueChanged.connect(self.edited)
            elif isinstance(w, QCheckBox):
                w.toggled.connect(self.edited)
            elif isinstance(w, QLineEdit) and not isinstance(w.parentWidget(), (QSpinBox, QDoubleSpinBox)):
                w.textChanged.connect(self.edited)

    # ------------------------------------------------------------------ result
    def settings(self) -> TrainSettings:
        """The core's TrainSettings for what the form shows: like ``inspector
        train``'s flags, only what differs from the preset is set, so a run
        from the form and one from the command line record the same recipe."""
        info = self.info
        preset = (info.get("presets") or {}).get(self.preset_combo.currentText()) or {"model": {}, "train": {}}
        pm, pt = preset["model"], preset["train"]
        shown = {**info.get("params", {}), **pm.get("params", {})}  # the preset's value of every parameter

        def changed(value: Any, preset_value: Any) -> Any:
            return None if value == preset_value else value

        params = {n: e.value() for n, e in self.param_editors.items() if e.value() != shown.get(n, e.default)}
        if "backbone" in shown and self.backbone_combo.currentText() != shown["backbone"]:
            params["backbone"] = self.backbone_combo.currentText()
        choice = self._weights_choice() if info.get("weights_param") else None
        one_pass = self.one_pass
        budget, n = self.budget_combo.currentData(), self.budget_spin.value()
        augment = {}
        for name, w in self.augment.items():
            value = w.isChecked() if isinstance(w, QCheckBox) else float(w.value())
            if value:
                augment[name] = value
        lr = float(self.lr_spin.value())
        return TrainSettings(
            model=self.model_combo.currentText(), preset=self.preset_combo.currentText() or "standard",
            image_size=changed(int(self.size_combo.currentText()), pm.get("image_size")),
            normalize=changed(self.normalize_combo.currentData(), pm.get("normalize", "none")),
            epochs=None if one_pass or budget != "epochs" else changed(n, None if pt.get("updates") else pt.get("epochs")),
            updates=None if one_pass or budget != "updates" else changed(n, pt.get("updates")),
            batch_size=changed(self.batch_spin.value(), pt.get("batch_size")),
            lr=None if one_pass else changed(lr, shown.get("lr", pt.get("lr"))),
            lr_schedule=None if one_pass else changed(self.schedule_combo.currentText(), pt.get("lr_schedule")),
            augment=None if one_pass else changed(augment, pt.get("augment") or {}), params=params,
            weights=self.weights_edit.text().strip() if choice == "file" else None,
            from_scratch=choice == "scratch", device=self.device_combo.currentText(), seed=self.seed_spin.value(),
            cpu_bf16=self.fast_cpu_check.isChecked(),
        )


__all__ = ["AUGMENTATION", "DEFAULT_FAMILY", "FAMILY_NAMES", "ParamEditor", "TrainForm", "family_name",
           "family_names", "model_catalogue"]
