"""Summary statistics shared by the bench scripts (compare_pytorch, compare_dtypes)."""
import statistics


def quantile(values, q):
    """Linear interpolation between closest ranks (numpy's default), q in [0, 1]."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def summary(values):
    """Median, p10, p90 and count of a list of timings."""
    return {"median": statistics.median(values), "p10": quantile(values, 0.1), "p90": quantile(values, 0.9),
            "n": len(values)}
