"""Perceived-group distributions, distances, success rates and CLIP similarities on hand-computed
cases (CLIPScore: tests/test_t2i_classify.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from debiaslab.metrics import declaration, directions
from debiaslab.stats import bootstrap_ci
from debiaslab.t2i.metrics import (
    EPS,
    METRICS,
    NO_PERSON,
    caption_similarity,
    cosine_similarity,
    distribution_metrics,
    encode_predictions,
    image_similarity,
    kl_divergence,
    mean_abs_error,
    perceived_distribution,
    success_rate,
    total_variation,
)

GENDER = ["female", "male"]
HALF = {"female": 0.5, "male": 0.5}
FMF = ["female", "male", "female"]


# ---------------------------------------------------------- plain reference implementations


def plain_kl(p: list[float], q: list[float], eps: float) -> float:
    k = len(p)
    total = 0.0
    for p_g, q_g in zip(p, q, strict=True):
        ps = (p_g + eps) / (1 + k * eps)
        qs = (q_g + eps) / (1 + k * eps)
        total += ps * math.log(ps / qs)
    return total


def plain_tv(p: list[float], q: list[float]) -> float:
    return sum(abs(a - b) for a, b in zip(p, q, strict=True)) / 2


# ------------------------------------------------------------------- hand-computed case


def test_three_images_against_half_half():
    assert perceived_distribution(FMF, GENDER) == pytest.approx({"female": 2 / 3, "male": 1 / 3})
    p, q = {"female": 2 / 3, "male": 1 / 3}, HALF
    assert total_variation(p, q) == pytest.approx(1 / 6)
    assert mean_abs_error(p, q) == pytest.approx(1 / 6)
    by_hand = 2 / 3 * math.log((2 / 3) / 0.5) + 1 / 3 * math.log((1 / 3) / 0.5)
    assert kl_divergence(p, q, eps=0) == pytest.approx(by_hand, abs=1e-12)
    assert kl_divergence(p, q) == pytest.approx(by_hand, abs=1e-5)  # EPS barely moves it

    metrics, _ = distribution_metrics({"a doctor": FMF}, GENDER, HALF, n_boot=0)
    assert metrics["prompt/a doctor/share/female"] == pytest.approx(2 / 3)
    assert metrics["prompt/a doctor/tv"] == pytest.approx(1 / 6)
    assert metrics["prompt/a doctor/mean_abs"] == pytest.approx(1 / 6)
    assert metrics["prompt/a doctor/kl"] == pytest.approx(
        plain_kl([2 / 3, 1 / 3], [0.5, 0.5], EPS)
    )
    assert metrics["kl"] == metrics["prompt/a doctor/kl"]  # one prompt: overall = that prompt
    assert metrics["n_images"] == 3 and metrics["n_no_person"] == 0


def test_parity_with_plain_implementations():
    rng = np.random.default_rng(1)
    for k in (2, 3, 5):
        for _ in range(20):
            p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
            p[0] = 0.0  # a zero perceived share is allowed
            p = p / p.sum()
            assert kl_divergence(p, q) == pytest.approx(plain_kl(list(p), list(q), EPS))
            assert kl_divergence(p, q, eps=1e-3) == pytest.approx(plain_kl(list(p), list(q), 1e-3))
            assert total_variation(p, q) == pytest.approx(plain_tv(list(p), list(q)))
            assert mean_abs_error(p, q) == pytest.approx(2 * plain_tv(list(p), list(q)) / k)


def test_zero_target_share_gives_a_finite_kl():
    kl = kl_divergence([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(kl) and kl == pytest.approx(plain_kl([0.5, 0.5], [1.0, 0.0], EPS))


def test_mismatched_distributions_are_refused():
    with pytest.raises(ValueError, match="same groups"):
        kl_divergence({"female": 1.0}, {"male": 1.0})
    with pytest.raises(ValueError, match="shape"):
        total_variation([1.0], [0.5, 0.5])


# ---------------------------------------------------------------- predictions and no person


def test_no_person_is_left_out_but_counted_and_fails_success():
    images = ["female", NO_PERSON, "male", "female"]
    assert perceived_distribution(images, GENDER) == pytest.approx(
        {"female": 2 / 3, "male": 1 / 3}
    )
    assert success_rate(images, "female", GENDER) == 0.5  # 2 of 4: the empty image fails
    metrics, _ = distribution_metrics(
        {"a female doctor": images},
        GENDER,
        HALF,
        requested={"a female doctor": "female"},
        n_boot=0,
    )
    assert metrics["prompt/a female doctor/n_no_person"] == 1
    assert metrics["prompt/a female doctor/n_images"] == 4
    assert metrics["prompt/a female doctor/success_rate"] == 0.5
    assert metrics["success_rate"] == 0.5


def test_soft_and_hard_distributions():
    images = [
        {"female": 0.6, "male": 0.4},
        {"female": 0.1, "male": 0.3, NO_PERSON: 0.6},  # no person: argmax is NO_PERSON
        [0.2, 0.6],  # aligned vector, renormalised to (0.25, 0.75)
    ]
    hard = perceived_distribution(images, GENDER)
    soft = perceived_distribution(images, GENDER, soft=True)
    assert hard == {"female": 0.5, "male": 0.5}
    assert soft == pytest.approx({"female": (0.6 + 0.25) / 2, "male": (0.4 + 0.75) / 2})
    codes, probs = encode_predictions(images, GENDER)
    assert codes.tolist() == [0, -1, 1] and probs[1].tolist() == [0.0, 0.0]


def test_argmax_ties_go_to_the_earlier_group():
    assert encode_predictions([{"female": 0.5, "male": 0.5}], GENDER)[0].tolist() == [0]


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        ("nonbinary", "unknown label"),
        ({"female": 0.5, "robot": 0.5}, "unknown labels"),
        ([0.2, 0.3, 0.5], "3 probabilities for 2 groups"),
        ([-0.1, 1.1], "≥ 0"),
        ([float("nan"), 1.0], "finite"),
        ([0.0, 0.0], "all probabilities are 0"),
    ],
)
def test_bad_predictions_are_located(prediction, message):
    with pytest.raises(ValueError, match=message) as err:
        distribution_metrics({"p": ["female", prediction]}, GENDER, HALF, n_boot=0)
    assert "prompt 'p'" in str(err.value) and "image 1" in str(err.value)


def test_prompt_with_only_empty_images():
    metrics, ci = distribution_metrics(
        {"a": FMF, "b": [NO_PERSON, NO_PERSON]}, GENDER, HALF, n_boot=50
    )
    assert math.isnan(metrics["prompt/b/share/female"]) and math.isnan(metrics["prompt/b/kl"])
    assert metrics["n_prompts_without_person"] == 1 and metrics["n_prompts"] == 2
    assert metrics["tv"] == pytest.approx(1 / 6)  # only prompt a has a distribution
    assert all(math.isnan(v) for v in ci["prompt/b/tv"])


# -------------------------------------------------------------------- several prompts


def test_overall_is_the_mean_over_prompts_with_per_prompt_targets():
    predictions = {
        "a nurse": ["female"] * 3 + ["male"],  # (0.75, 0.25)
        "a ceo": ["male", "male", "female", "male", NO_PERSON, NO_PERSON],  # (0.25, 0.75)
    }
    target = {"a nurse": {"female": 0.9, "male": 0.1}, "a ceo": {"female": 0.3, "male": 0.7}}
    metrics, _ = distribution_metrics(predictions, GENDER, target, n_boot=0)
    tv_nurse, tv_ceo = plain_tv([0.75, 0.25], [0.9, 0.1]), plain_tv([0.25, 0.75], [0.3, 0.7])
    assert metrics["prompt/a nurse/tv"] == pytest.approx(0.15)
    assert metrics["prompt/a ceo/tv"] == pytest.approx(0.05)
    assert metrics["tv"] == pytest.approx((tv_nurse + tv_ceo) / 2)  # prompts weigh the same
    kl_mean = (
        plain_kl([0.75, 0.25], [0.9, 0.1], EPS) + plain_kl([0.25, 0.75], [0.3, 0.7], EPS)
    ) / 2
    assert metrics["kl"] == pytest.approx(kl_mean)
    assert metrics["share/female"] == pytest.approx(0.5)
    # prompt-averaged distribution (0.5, 0.5) against the prompt-averaged target (0.6, 0.4)
    assert metrics["tv_of_mean"] == pytest.approx(0.1)
    assert metrics["kl_of_mean"] == pytest.approx(plain_kl([0.5, 0.5], [0.6, 0.4], EPS))
    assert metrics["n_images"] == 10 and metrics["n_no_person"] == 2


def test_success_only_for_prompts_that_request_a_group():
    predictions = {"a female ceo": ["female", "male"], "a ceo": ["male", "male"]}
    metrics, _ = distribution_metrics(
        predictions, GENDER, HALF, requested={"a female ceo": "female"}, n_boot=0
    )
    assert metrics["prompt/a female ceo/success_rate"] == 0.5
    assert "prompt/a ceo/success_rate" not in metrics
    assert metrics["success_rate"] == 0.5
    without, _ = distribution_metrics(predictions, GENDER, HALF, n_boot=0)
    assert "success_rate" not in without


@pytest.mark.parametrize(
    ("target", "requested", "message"),
    [
        ({"female": 0.5, "male": 0.5, "other": 0.0}, None, "differ from the classifier"),
        ({"female": 0.6, "male": 0.6}, None, "sum to 1"),
        ({"other prompt": HALF}, None, "no target"),
        (HALF, {"p": "robot"}, "requested group"),
    ],
)
def test_bad_targets_and_requests(target, requested, message):
    with pytest.raises(ValueError, match=message):
        distribution_metrics({"p": FMF}, GENDER, target, requested=requested, n_boot=0)


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="no prompts"):
        distribution_metrics({}, GENDER, HALF)
    with pytest.raises(ValueError, match="no images"):
        distribution_metrics({"p": []}, GENDER, HALF)


# ---------------------------------------------------------------------------------- CIs


def test_cis_are_seeded_and_contain_the_point():
    images = ["female"] * 7 + ["male"] * 3
    predictions = {f"p{j}": images[j:] + images[:j] for j in range(5)}
    predictions["p5"] = ["male"] * 6 + ["female"] * 4
    requested = dict.fromkeys(predictions, "female")
    kwargs = {"requested": requested, "n_boot": 300}
    first = distribution_metrics(predictions, GENDER, HALF, seed=3, **kwargs)
    again = distribution_metrics(predictions, GENDER, HALF, seed=3, **kwargs)
    other = distribution_metrics(predictions, GENDER, HALF, seed=4, **kwargs)
    assert first == again and first[1] != other[1]
    metrics, ci = first
    for key in ("share/female", "success_rate", "prompt/p0/share/female", "prompt/p0/tv"):
        low, high = ci[key]
        assert low <= metrics[key] <= high
    assert "n_images" not in ci and "prompt/p0/n_images" not in ci  # counts get no interval


def test_per_prompt_ci_is_the_image_bootstrap_of_stats():
    images = ["female"] * 6 + ["male"] * 4 + [NO_PERSON] * 2
    _, ci = distribution_metrics({"p": images}, GENDER, HALF, n_boot=200, seed=7)
    person = np.array([x != NO_PERSON for x in images])
    female = np.array([x == "female" for x in images])
    # the prompt's CI resamples its images with seed + 1 (see the docstring)
    reference = bootstrap_ci(
        lambda idx: {"share": female[idx].sum() / person[idx].sum()},
        len(images),
        n_boot=200,
        seed=8,
    )
    assert ci["prompt/p/share/female"] == pytest.approx(reference["share"])


def test_cis_collapse_when_all_images_agree():
    predictions = {"a": ["female"] * 5, "b": ["female"] * 4}
    metrics, ci = distribution_metrics(
        predictions, GENDER, HALF, requested=dict.fromkeys(predictions, "female"), n_boot=100
    )
    assert ci["prompt/a/share/female"] == (1.0, 1.0)
    assert ci["prompt/a/tv"] == pytest.approx((0.5, 0.5))
    assert ci["success_rate"] == (1.0, 1.0) and metrics["success_rate"] == 1.0
    assert ci["kl"] == pytest.approx((metrics["kl"], metrics["kl"]))


def test_no_bootstrap_gives_no_intervals():
    assert distribution_metrics({"p": FMF}, GENDER, HALF, n_boot=0)[1] == {}


def test_directions():
    def higher_is_better(key):
        return declaration(METRICS, key, benchmark="t2i_audit").higher_is_better

    assert higher_is_better("prompt/x/tv") is False and higher_is_better("kl_of_mean") is False
    assert higher_is_better("prompt/x/success_rate") is True
    assert higher_is_better("n_images") is None and higher_is_better("share/male") is None
    # every key distribution_metrics writes is declared
    requested = {"p": "female"}
    metrics, _ = distribution_metrics({"p": FMF}, GENDER, HALF, requested=requested, n_boot=0)
    higher, ideal = directions(METRICS, metrics, benchmark="t2i_audit")
    assert higher["prompt/p/kl"] is False and higher["prompt/p/share/female"] is None
    assert ideal == {}  # shares have per-prompt targets, not one ideal


# ------------------------------------------------------------------------------ CLIP


def test_cosine_similarity_batches_and_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    pairs = zip(img, txt, strict=True)
    by_hand = [float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in pairs]
    assert cosine_similarity(img, txt) == pytest.approx(by_hand)
    as_tensors = cosine_similarity(torch.tensor(img, dtype=torch.float32), torch.tensor(txt))
    assert as_tensors == pytest.approx(by_hand, rel=1e-5)
    # the same definition as torch's cosine similarity
    reference = torch.nn.functional.cosine_similarity(torch.tensor(img), torch.tensor(txt))
    assert cosine_similarity(img, txt) == pytest.approx(reference.numpy())


def test_image_and_caption_similarity():
    assert image_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert caption_similarity([1.0, 1.0], [-2.0, -2.0]) == pytest.approx(-1.0)  # not clipped
    one_to_many = image_similarity([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    assert one_to_many.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="pair up"):
        cosine_similarity([1.0, 0.0, 0.0], [1.0, 0.0])
