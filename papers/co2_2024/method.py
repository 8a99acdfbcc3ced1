"""CO2 (Sun et al. 2024): local updating with the outer all-reduce fully overlapped with the next round,
and the outer step m <- mu m + U / lambda, m <- clamp(m, -c, c), theta <- theta - alpha m on the previous
round's averaged outer gradient U (common.dist.localsgd.CO2)."""
from optrepro.dist.localsgd import CO2 as Method  # noqa: F401
