"""Black-box acceptance suite: `bizfed serve` over HTTP, checked against SQL on the legacy databases."""
