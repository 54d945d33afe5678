"""Perceived-demographics classifiers, their reliability report, CLIP embeddings and CLIPScore,
and the tiny offline CLIP/BLIP models they are tested on."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from debiaslab.errors import ConfigError
from debiaslab.t2i import classify as cl
from debiaslab.t2i.clip import as_pil, clip_score, embed_images, embed_texts, load_clip
from debiaslab.tiny import t2i as t2i_tiny


@pytest.fixture(scope="module")
def clip(t2i_cache):
    return load_clip("tiny-clip", device="cpu")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(6)]


def test_zero_shot_probabilities_per_axis_with_no_person(clip, images):
    classifier = cl.ZeroShotClassifier(clip)
    assert classifier.labels["gender"] == ["female", "male", cl.NO_PERSON]
    assert classifier.labels["race"] == [*cl.FAIRFACE_RACES, cl.NO_PERSON]
    probs = classifier(images)
    assert set(probs) == {"gender", "race"}
    assert probs["gender"].shape == (6, 3) and probs["race"].shape == (6, 8)
    for p in probs.values():
        assert np.all(p >= 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert classifier(images[:2])["gender"] == pytest.approx(probs["gender"][:2], abs=1e-5)


def test_zero_shot_options(clip, images):
    axes = {"age": {"young": ["a photo of a child", "a photo of a teenager"], "old": "an old man"}}
    classifier = cl.ZeroShotClassifier(clip, axes, no_person=None)
    assert classifier.labels == {"age": ["young", "old"]}
    assert classifier(images)["age"].shape == (6, 2)
    with pytest.raises(ConfigError, match="two or more groups"):
        cl.ZeroShotClassifier(clip, {"x": {"only": "a photo"}}, no_person=None)
    with pytest.raises(ConfigError, match="no_person"):
        cl.ZeroShotClassifier(clip, {"x": {"a": "a", cl.NO_PERSON: "b"}})


def test_merge_and_predict():
    probs = np.array([[0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1]])
    merged, names = cl.merge_groups(probs, cl.FAIRFACE_RACES, cl.RACE4)
    assert names == ["White", "Black", "Other", "Asian", "Indian"]
    np.testing.assert_allclose(merged, [[0.1, 0.2, 0.4, 0.2, 0.1]])
    assert cl.predicted_labels({"race": merged}, {"race": names}) == {"race": ["Other"]}


class FakeClassifier:
    """Hand-set probabilities, to check the report's arithmetic."""

    def __init__(self) -> None:
        self.labels = {"gender": ["female", "male", cl.NO_PERSON], "race": ["A", "B"]}

    def __call__(self, images):
        gender = {0: [0.9, 0.1, 0], 1: [0.2, 0.7, 0.1], 2: [0, 1, 0], 3: [0.3, 0.6, 0.1]}
        gender[4] = [0.5, 0.2, 0.3]
        race = {0: [1, 0], 1: [1, 0], 2: [0, 1], 3: [0, 1], 4: [0.5, 0.5]}
        return {
            "gender": np.array([gender[i] for i in images]),
            "race": np.array([race[i] for i in images]),
        }


def test_evaluate_classifier_accuracy_per_class():
    labelled = [
        (0, {"gender": "female", "race": "A"}),  # predicted female, A
        (1, {"gender": "female"}),  # predicted male
        (2, {"gender": "male", "race": "A"}),  # predicted male, B
        (3, {"gender": "male"}),  # predicted male
        (4, {"gender": cl.NO_PERSON}),  # predicted female
    ]
    reports = cl.evaluate_classifier(FakeClassifier(), labelled)
    gender = reports["gender"]
    assert gender["n"] == 5 and gender["accuracy"] == pytest.approx(3 / 5)
    assert gender["per_class"] == {
        "female": {"accuracy": 0.5, "n": 2},
        "male": {"accuracy": 1.0, "n": 2},
        cl.NO_PERSON: {"accuracy": 0.0, "n": 1},
    }
    assert gender["balanced_accuracy"] == pytest.approx(0.5)
    assert gender["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    race = reports["race"]  # only the two images labelled on race
    assert race["n"] == 2 and race["accuracy"] == 0.5
    assert race["per_class"]["A"] == {"accuracy": 0.5, "n": 2}
    assert math.isnan(race["per_class"]["B"]["accuracy"]) and race["per_class"]["B"]["n"] == 0
    assert race["balanced_accuracy"] == 0.5  # B has no images: not averaged
    with pytest.raises(ConfigError, match="'age'"):
        cl.evaluate_classifier(FakeClassifier(), [(0, {"age": "old"})])
    with pytest.raises(ConfigError, match="'nonbinary'"):
        cl.evaluate_classifier(FakeClassifier(), [(0, {"gender": "nonbinary"})])


def test_evaluate_zero_shot_end_to_end(clip, images):
    labelled = [
        (image, {"gender": "female" if i % 2 else "male"}) for i, image in enumerate(images)
    ]
    classifier = cl.ZeroShotClassifier(clip)
    report = cl.evaluate_classifier(classifier, labelled)["gender"]
    # By hand: the predicted label is the argmax of the classifier's probabilities; accuracy
    # the share of images where it is the given label; confusion[true][predicted] counts.
    names = classifier.labels["gender"]
    predicted = [names[i] for i in classifier(images)["gender"].argmax(axis=1)]
    truth = [label["gender"] for _, label in labelled]
    hits = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert report["n"] == 6 and report["accuracy"] == pytest.approx(hits / 6)
    confusion = [[0] * len(names) for _ in names]
    for p, t in zip(predicted, truth, strict=True):
        confusion[names.index(t)][names.index(p)] += 1
    assert report["confusion"] == confusion


def test_image_classifier_path_maps_labels_to_groups(tmp_path, images):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = dict(enumerate(cl.FAIRFACE_RACES))
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=37, id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)

    seven = cl.ImageClassifier(str(tmp_path), axis="race", device="cpu")
    assert seven.labels == {"race": list(cl.FAIRFACE_RACES)}
    full = seven(images)["race"]
    assert full.shape == (6, 7)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)

    four = cl.ImageClassifier(str(tmp_path), label_map={**cl.RACE4, "Middle Eastern": None})
    assert four.labels["race"] == ["White", "Black", "Other", "Asian", "Indian"]
    merged = four(images)["race"]
    np.testing.assert_allclose(merged.sum(axis=1), 1.0, atol=1e-5)
    kept = full[:, [i for i, r in enumerate(cl.FAIRFACE_RACES) if r != "Middle Eastern"]]
    np.testing.assert_allclose(
        merged[:, 3], (full[:, 3] + full[:, 4]) / kept.sum(axis=1), rtol=1e-5
    )  # East + Southeast Asian, renormalised without Middle Eastern
    with pytest.raises(ConfigError, match="cannot load an image classifier"):
        cl.ImageClassifier(str(tmp_path / "nowhere"))


def test_embeddings_are_normalised_and_inputs_interchangeable(clip, images, tmp_path):
    path = tmp_path / "image.png"
    images[0].save(path)
    array = np.array(images[0])
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    embeds = embed_images(clip, [images[0], path, array, tensor])
    assert embeds.shape == (4, t2i_tiny.TINY_PROJECTION) and embeds.dtype == torch.float32
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(embeds, embeds[:1].expand(4, -1))
    texts = embed_texts(clip, ["a photo of a woman", "a man", "a" * 300])  # truncated
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(3))


def _as_tensor_features(model):
    """transformers 5's CLIPModel.get_*_features return model outputs, which torchmetrics 1.9
    normalises as tensors: hand it the projected tensors (the same numbers)."""

    class TensorFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            out = self.model.get_image_features(*args, **kwargs)
            return out if torch.is_tensor(out) else out.pooler_output

        def get_text_features(self, *args, **kwargs):
            out = self.model.get_text_features(*args, **kwargs)
            return out if torch.is_tensor(out) else out.pooler_output

    return TensorFeatures()


def test_clip_score_equals_torchmetrics(clip):
    clip_score_mod = pytest.importorskip("torchmetrics.multimodal.clip_score")
    generator = torch.Generator().manual_seed(0)
    pool = [
        torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=generator)
        for _ in range(8)
    ]
    captions = [
        f"a photo of a {w}" for w in ("doctor", "nurse", "CEO", "pilot", "chef", "teacher")
    ]
    # Pairs with a positive cosine: there torchmetrics (which clamps the mean) and the paper's
    # per-pair clamp agree (see the module docstring of debiaslab.t2i.classify).
    cosines = embed_images(clip, pool) @ embed_texts(clip, captions).T
    pairs = [(i, j) for i in range(len(pool)) for j in range(len(captions)) if cosines[i, j] > 0]
    assert len(pairs) >= 3
    images, texts = [pool[i] for i, _ in pairs], [captions[j] for _, j in pairs]

    ours = clip_score(clip, images, texts, scale="torchmetrics")
    metric = clip_score_mod.CLIPScore(
        model_name_or_path=lambda: (_as_tensor_features(clip.model), clip.processor)
    )
    metric.update(images, texts)
    assert float(metric.compute()) == pytest.approx(float(ours.mean()), abs=1e-4)
    hessel = clip_score(clip, images, texts, scale="hessel")
    np.testing.assert_allclose(hessel, ours * 2.5 / 100, rtol=1e-6)

    # Negative cosines (text projection negated: every cosine flips sign) score 0, not below.
    flipped = copy.deepcopy(clip.model)
    with torch.no_grad():
        flipped.text_projection.weight.neg_()
    flipped_clip = dataclasses.replace(clip, model=flipped)
    assert clip_score(flipped_clip, images, texts).tolist() == [0.0] * len(images)
    metric = clip_score_mod.CLIPScore(
        model_name_or_path=lambda: (_as_tensor_features(flipped), clip.processor)
    )
    metric.update(images, texts)
    assert float(metric.compute()) == 0.0
    with pytest.raises(ConfigError, match="scale"):
        clip_score(clip, images, texts, scale="percent")
    with pytest.raises(ConfigError, match="one text per image"):
        clip_score(clip, images, texts[:-1])


def test_clip_score_is_the_per_pair_definition_by_hand(clip):
    """``w · max(cos, 0)`` per pair (Hessel et al.), by hand from the model's projected features:
    both scales, negative cosines clamped to 0 pair by pair."""
    generator = torch.Generator().manual_seed(1)
    pool = [
        torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=generator)
        for _ in range(8)
    ]
    captions = ["a photo of a doctor", "a nurse", "a red cube", "a CEO at a desk", "a dog", "blue"]
    pairs = [(image, text) for image in pool for text in captions]  # every image x caption
    images, texts = [image for image, _ in pairs], [text for _, text in pairs]
    features = _as_tensor_features(clip.model)
    with torch.no_grad():
        pixels = clip.processor(images=[as_pil(i) for i in images], return_tensors="pt")
        image_features = features.get_image_features(pixel_values=pixels["pixel_values"])
        tokens = clip.processor(text=texts, return_tensors="pt", padding=True)
        text_features = features.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )

    def cosine(a, b):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    cosines = [
        cosine(a.tolist(), b.tolist()) for a, b in zip(image_features, text_features, strict=True)
    ]
    assert min(cosines) < 0 < max(cosines)  # both sides of the clamp are exercised
    for scale, weight in (("torchmetrics", 100.0), ("hessel", 2.5)):
        expected = [weight * max(c, 0.0) for c in cosines]
        ours = clip_score(clip, images, texts, scale=scale)
        assert ours.tolist() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_tiny_models_load_like_hub_models(t2i_cache):
    from transformers import BlipForConditionalGeneration, BlipProcessor, CLIPModel, CLIPProcessor

    clip_dir = t2i_tiny.tiny_t2i_path("clip")
    assert clip_dir.parent == t2i_cache / "tiny"
    manifest = (clip_dir / "planted.json").read_text()
    assert t2i_tiny.tiny_t2i_path("clip") == clip_dir  # reused, not rebuilt
    assert (clip_dir / "planted.json").read_text() == manifest
    model = CLIPModel.from_pretrained(clip_dir, use_safetensors=True)
    processor = CLIPProcessor.from_pretrained(clip_dir)
    assert model.config.vision_config.image_size == 32
    assert processor.tokenizer.model_max_length == 77

    blip_dir = t2i_tiny.tiny_t2i_path("blip")
    captioner = BlipForConditionalGeneration.from_pretrained(blip_dir, use_safetensors=True)
    blip_processor = BlipProcessor.from_pretrained(blip_dir)
    inputs = blip_processor(images=[Image.new("RGB", (32, 32), "red")], return_tensors="pt")
    caption = blip_processor.batch_decode(
        captioner.generate(**inputs, max_new_tokens=5), skip_special_tokens=True
    )
    assert len(caption) == 1 and isinstance(caption[0], str)
    with pytest.raises(ConfigError, match="unknown tiny"):
        t2i_tiny.tiny_t2i_path("gan")


def test_labelled_folder_reads_labels_and_locates_problems(tmp_path):
    from PIL import Image

    from debiaslab.errors import ConfigError, DataFormatError
    from debiaslab.t2i.classify import read_labelled_folder

    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("file,gender,race\na.png,female,Black\nb.png,male,\n")
    pairs = read_labelled_folder(tmp_path)
    assert pairs == [
        (tmp_path / "a.png", {"gender": "female", "race": "Black"}),
        (tmp_path / "b.png", {"gender": "male"}),  # an empty cell is not scored
    ]
    (tmp_path / "labels.csv").write_text("file,gender\nc.png,female\n")
    with pytest.raises(DataFormatError, match=r"row 2.*'c\.png' not found"):
        read_labelled_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"no labels\.csv"):
        read_labelled_folder(tmp_path / "nowhere")
