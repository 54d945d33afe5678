"""PreciseDebias (Clemmer et al., WACV 2024): rewrite a generic text-to-image prompt so that the
people in the images follow target group shares (US BLS).

Data, in the order it flows: `words` (word lists, tokens) -> `replace` (demographic words ->
placeholders) -> `fill` (placeholders -> a group's words; the subject slot) -> `pairs`
(instruction pairs, split by prompt, seed files). Model: `groups` (which group a rewrite names)
-> `rewriter` (prompt format, LoRA training, rewriting) -> `align` (the measure-and-align loop).
`tiny` builds a planted tiny rewriter for offline tests.
"""
