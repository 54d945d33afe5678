"""Text-to-image bias: target distributions, perceived-demographics metrics, CLIPScore."""
