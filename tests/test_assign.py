"""Counterpart assignment: the exact programme against direct enumeration of every partial
matching, invariants, the approximate path for oversize islands, acceptance, and the
CuPy executor against NumPy."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gpumatch.assign import (APPROX_BETHE, APPROX_NOT_CONVERGED, EXACT, NO_PAIRS, accept,
                             evaluate_island_set, evaluate_islands)

TOL = 1e-12


# ----------------------------------------------------------------------------- enumeration
def enumerate_hypotheses(na, nb, pairs):
    """Every partial matching of an island as (list of (a, b), ln prod r); pairs: {(a, b): ln r}.
    Written independently of the programme: A sources in turn take an unused B or none."""
    out = []

    def rec(a, used, chosen, lw):
        if a == na:
            out.append((list(chosen), lw))
            return
        rec(a + 1, used, chosen, lw)
        for b in range(nb):
            if b not in used and (a, b) in pairs and pairs[(a, b)] > -np.inf:
                chosen.append((a, b))
                rec(a + 1, used | {b}, chosen, lw + pairs[(a, b)])
                chosen.pop()

    rec(0, frozenset(), [], 0.0)
    return out


def brute(na, nb, pairs):
    """ln K, hypothesis probabilities, marginals, P(no match), best hypothesis by enumeration."""
    hyps = enumerate_hypotheses(na, nb, pairs)
    lw = np.array([h[1] for h in hyps])
    top = lw.max()
    logK = top + np.log(np.sum(np.exp(lw - top)))
    prob = np.exp(lw - logK)
    marg = {k: 0.0 for k in pairs}
    none_a, none_b = np.zeros(na), np.zeros(nb)
    for (chosen, _), p in zip(hyps, prob):
        for k in chosen:
            marg[k] += p
        ma = {a for a, _ in chosen}
        mb = {b for _, b in chosen}
        none_a[[a for a in range(na) if a not in ma]] += p
        none_b[[b for b in range(nb) if b not in mb]] += p
    order = np.argsort(-lw, kind="stable")
    gap = lw[order[0]] - lw[order[1]] if len(lw) > 1 else np.inf
    return dict(logK=logK, prob=prob, marg=marg, none_a=none_a, none_b=none_b,
                best=set(hyps[order[0]][0]), bestw=lw[order[0]], gap=gap)


def random_island(rng, na, nb, density=0.7, scale=3.0, neg_inf=0.0):
    pairs = {}
    for a in range(na):
        for b in range(nb):
            if rng.random() < density:
                pairs[(a, b)] = -np.inf if rng.random() < neg_inf else rng.normal(0.0, scale)
    return pairs


def pack(islands, rng=None):
    """CSR inputs for a list of (na, nb, pairs) islands; global rows are shuffled and the pair
    list permuted when ``rng`` is given.  Returns (args, pair_keys) with pair_keys[p] =
    (island, local a, local b)."""
    na_t = sum(i[0] for i in islands)
    nb_t = sum(i[1] for i in islands)
    rows_a = rng.permutation(na_t) + 1000 if rng is not None else np.arange(na_t)
    rows_b = rng.permutation(nb_t) + 5000 if rng is not None else np.arange(nb_t)
    ptr_a, ptr_b, keys, pa, pb, pw, pi = [0], [0], [], [], [], [], []
    for k, (na, nb, pairs) in enumerate(islands):
        oa, ob = ptr_a[-1], ptr_b[-1]
        for (a, b), lw in pairs.items():
            keys.append((k, a, b))
            pa.append(rows_a[oa + a])
            pb.append(rows_b[ob + b])
            pw.append(lw)
            pi.append(k)
        ptr_a.append(oa + na)
        ptr_b.append(ob + nb)
    perm = rng.permutation(len(keys)) if rng is not None else np.arange(len(keys))
    args = (np.array(ptr_a), rows_a, np.array(ptr_b), rows_b, np.array(pi, dtype=np.int64)[perm],
            np.array(pa, dtype=np.int64)[perm], np.array(pb, dtype=np.int64)[perm],
            np.array(pw, dtype=np.float64)[perm])
    return args, [keys[p] for p in perm]


def check_against_brute(islands, res, args, keys, check_best=True):
    ptr_a, rows_a, ptr_b, rows_b = args[:4]
    for k, (na, nb, pairs) in enumerate(islands):
        ref = brute(na, nb, pairs)
        lw = np.array([h[1] for h in enumerate_hypotheses(na, nb, pairs)])
        assert abs(np.exp(lw - res.log_evidence[k]).sum() - 1.0) < TOL   # probabilities sum to 1
        assert res.log_evidence[k] == pytest.approx(ref["logK"], rel=TOL, abs=TOL)
        sel = [p for p, key in enumerate(keys) if key[0] == k]
        got = res.pair_prob[sel]
        want = np.array([ref["marg"][keys[p][1:]] for p in sel])
        np.testing.assert_allclose(got, want, rtol=TOL, atol=1e-300)
        np.testing.assert_allclose(res.p_none_a[ptr_a[k]:ptr_a[k + 1]], ref["none_a"], rtol=TOL, atol=1e-300)
        np.testing.assert_allclose(res.p_none_b[ptr_b[k]:ptr_b[k + 1]], ref["none_b"], rtol=TOL, atol=1e-300)
        assert res.best_log_weight[k] == pytest.approx(ref["bestw"], rel=TOL, abs=TOL)
        if check_best and ref["gap"] > 1e-9:
            chosen = {keys[p][1:] for p in sel if res.pair_in_best[p]}
            assert chosen == ref["best"]
            assert res.best_prob[k] == pytest.approx(ref["prob"].max(), rel=TOL)
            for a, b in chosen:
                assert res.best_b[ptr_a[k] + a] == rows_b[ptr_b[k] + b]
                assert res.best_a[ptr_b[k] + b] == rows_a[ptr_a[k] + a]


def source_sums(res, args):
    """Per source: sum of its pair marginals + P(no match) (must be 1)."""
    ptr_a, rows_a, ptr_b, rows_b, _, pa, pb, _ = args
    ia = np.searchsorted(np.sort(rows_a), pa)
    oa = np.argsort(rows_a)[ia]
    ib = np.argsort(rows_b)[np.searchsorted(np.sort(rows_b), pb)]
    sa = np.bincount(oa, res.pair_prob, minlength=len(rows_a)) + res.p_none_a
    sb = np.bincount(ib, res.pair_prob, minlength=len(rows_b)) + res.p_none_b
    return sa, sb


# ----------------------------------------------------------------------------- exact path
def test_matches_enumeration_on_random_small_islands(rng):
    islands = [(int(rng.integers(1, 5)), int(rng.integers(1, 7)), None) for _ in range(120)]
    islands += [(nb, na, None) for na, nb, _ in islands[:60]]   # both orientations
    islands = [(na, nb, random_island(rng, na, nb, neg_inf=0.1)) for na, nb, _ in islands]
    args, keys = pack(islands, rng)
    res = evaluate_islands(*args, backend="numpy")
    check_against_brute(islands, res, args, keys)
    sa, sb = source_sums(res, args)
    np.testing.assert_allclose(sa, 1.0, atol=TOL)
    np.testing.assert_allclose(sb, 1.0, atol=TOL)
    assert set(res.status) <= {EXACT, NO_PAIRS}


def test_extreme_weights_do_not_underflow(rng):
    islands = [(3, 4, {k: v * 100 for k, v in random_island(rng, 3, 4, density=1).items()})
               for _ in range(10)]
    islands += [(2, 3, {(0, 0): -700.0, (1, 2): -745.0, (0, 1): 700.0})]
    args, keys = pack(islands, rng)
    res = evaluate_islands(*args, backend="numpy")
    assert np.all(np.isfinite(res.log_evidence)) and np.all(np.isfinite(res.pair_prob))
    check_against_brute(islands, res, args, keys)


def block_island(rng, blocks, na, nb):
    """One island made of disjoint blocks (its evidence factorises: an exact reference)."""
    pairs = {}
    for t in range(blocks):
        for (a, b), lw in random_island(rng, na, nb, density=0.4, scale=2.0).items():
            pairs[(t * na + a, t * nb + b)] = lw
    return pairs


@pytest.mark.parametrize("transpose", [False, True])
def test_wide_island_12_by_200(rng, transpose):
    """12 x 200 (and 200 x 12) in one programme of 4096 states; the island is 4 disjoint
    3 x 50 blocks, so its evidence and marginals follow from enumerating each block."""
    blocks, na, nb = 4, 3, 50
    pairs = block_island(rng, blocks, na, nb)
    refs = []
    for t in range(blocks):
        sub = {(a - t * na, b - t * nb): lw for (a, b), lw in pairs.items()
               if t * na <= a < (t + 1) * na}
        refs.append(brute(na, nb, sub))
    NA, NB = blocks * na, blocks * nb
    if transpose:
        pairs = {(b, a): lw for (a, b), lw in pairs.items()}
        NA, NB = NB, NA
    args, keys = pack([(NA, NB, pairs)], rng)
    res = evaluate_islands(*args, backend="numpy")
    assert res.status[0] == EXACT and res.small_is_a[0] == (not transpose)
    assert res.log_evidence[0] == pytest.approx(sum(r["logK"] for r in refs), rel=TOL)
    for p, (_, a, b) in enumerate(keys):
        if transpose:
            a, b = b, a
        t = a // na
        want = refs[t]["marg"][(a - t * na, b - t * nb)]
        assert res.pair_prob[p] == pytest.approx(want, rel=TOL, abs=1e-300)
    assert res.best_log_weight[0] == pytest.approx(sum(r["bestw"] for r in refs), rel=TOL)
    sa, sb = source_sums(res, args)
    np.testing.assert_allclose(sa, 1.0, atol=TOL)
    np.testing.assert_allclose(sb, 1.0, atol=TOL)


def test_orientation_does_not_change_the_answer(rng):
    pairs = random_island(rng, 9, 40, density=0.5)
    args, keys = pack([(9, 40, pairs)])
    targs, tkeys = pack([(40, 9, {(b, a): w for (a, b), w in pairs.items()})])
    r1 = evaluate_islands(*args, backend="numpy")
    r2 = evaluate_islands(*targs, backend="numpy")
    assert r1.small_is_a[0] and not r2.small_is_a[0]
    assert r1.log_evidence[0] == pytest.approx(r2.log_evidence[0], rel=TOL)
    np.testing.assert_allclose(r1.pair_prob, r2.pair_prob, rtol=TOL, atol=1e-300)
    np.testing.assert_array_equal(r1.pair_in_best, r2.pair_in_best)
    np.testing.assert_allclose(r1.p_none_a, r2.p_none_b, rtol=TOL, atol=1e-300)


def test_dense_wide_island_probabilities_sum_to_one(rng):
    pairs = random_island(rng, 12, 200, density=0.6)
    args, _ = pack([(12, 200, pairs)], rng)
    res = evaluate_islands(*args, backend="numpy")
    sa, sb = source_sums(res, args)
    np.testing.assert_allclose(sa, 1.0, atol=TOL)
    np.testing.assert_allclose(sb, 1.0, atol=TOL)
    assert 0 < res.best_prob[0] <= 1


def test_ties_follow_the_documented_rule():
    # one A source, two B candidates of equal weight: the first B member (first row) wins
    args, keys = pack([(1, 2, {(0, 0): 1.0, (0, 1): 1.0})])
    res = evaluate_islands(*args, backend="numpy")
    assert [keys[p] for p in np.flatnonzero(res.pair_in_best)] == [(0, 0, 0)]
    # r = 1 (ln r = 0): matching weighs the same as not matching -> left unmatched
    args, _ = pack([(1, 1, {(0, 0): 0.0})])
    res = evaluate_islands(*args, backend="numpy")
    assert not res.pair_in_best.any() and res.best_prob[0] == pytest.approx(0.5)
    # all-equal weights: an optimal hypothesis, the same every time
    pairs = {(a, b): 2.0 for a in range(3) for b in range(4)}
    args, keys = pack([(3, 4, pairs)])
    first = evaluate_islands(*args, backend="numpy")
    assert first.n_best_matches[0] == 3 and first.best_log_weight[0] == 6.0
    again = evaluate_islands(*args, backend="numpy")
    np.testing.assert_array_equal(first.pair_in_best, again.pair_in_best)


def test_sources_without_pairs_and_empty_islands():
    islands = [(2, 0, {}), (0, 3, {}), (2, 2, {(0, 0): -np.inf}), (3, 2, {(1, 1): 1.5})]
    args, keys = pack(islands)
    res = evaluate_islands(*args, backend="numpy")
    np.testing.assert_array_equal(res.status, [NO_PAIRS, NO_PAIRS, NO_PAIRS, EXACT])
    np.testing.assert_array_equal(res.log_evidence[:3], 0.0)
    np.testing.assert_array_equal(res.best_prob[:3], 1.0)
    assert res.log_evidence[3] == pytest.approx(np.log1p(np.exp(1.5)), rel=TOL)
    assert res.pair_prob[keys.index((2, 0, 0))] == 0.0
    p_match = np.exp(1.5) / (1 + np.exp(1.5))
    assert res.pair_prob[keys.index((3, 1, 1))] == pytest.approx(p_match, rel=TOL)
    np.testing.assert_allclose(res.p_none_a, [1, 1, 1, 1, 1, 1 - p_match, 1], rtol=TOL)
    np.testing.assert_array_equal(res.best_b, [-1, -1, -1, -1, -1, 6, -1])
    np.testing.assert_allclose(res.p_none_b, [1, 1, 1, 1, 1, 1, 1 - p_match], rtol=TOL)


def test_no_islands():
    e = np.zeros(0, dtype=np.int64)
    res = evaluate_islands([0], e, [0], e, e, e, e, np.zeros(0), backend="numpy")
    assert len(res.log_evidence) == 0 and len(res.pair_prob) == 0


def test_chunking_does_not_change_results(rng):
    islands = [(int(rng.integers(1, 4)), int(rng.integers(1, 9)), None) for _ in range(40)]
    islands = [(na, nb, random_island(rng, na, nb)) for na, nb, _ in islands]
    args, _ = pack(islands, rng)
    a = evaluate_islands(*args, backend="numpy")
    from gpumatch.assign_dp import workspace_bytes
    need = max(int(workspace_bytes(min(na, nb), [max(na, nb)])[0]) for na, nb, _ in islands)
    b = evaluate_islands(*args, backend="numpy", workspace_bytes=need)
    assert set(b.status) <= {EXACT, NO_PAIRS}
    for f in ("log_evidence", "best_log_weight", "pair_prob", "p_none_a", "p_none_b"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.pair_in_best, b.pair_in_best)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_random_islands(data):
    n_isl = data.draw(st.integers(1, 4))
    islands = []
    for _ in range(n_isl):
        na = data.draw(st.integers(0, 4))
        nb = data.draw(st.integers(0, 5))
        cells = [(a, b) for a in range(na) for b in range(nb)]
        keep = data.draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
        weight = st.one_of(st.floats(-60, 60), st.just(-np.inf), st.sampled_from([0.0, 1.0, -1.0]))
        pairs = {c: data.draw(weight) for c, k in zip(cells, keep) if k}
        islands.append((na, nb, pairs))
    args, keys = pack(islands, np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))))
    res = evaluate_islands(*args, backend="numpy")
    check_against_brute(islands, res, args, keys, check_best=False)
    sa, sb = source_sums(res, args)
    np.testing.assert_allclose(sa, 1.0, atol=TOL)
    np.testing.assert_allclose(sb, 1.0, atol=TOL)
    # the chosen hypothesis is a matching of positive-weight pairs with the optimal weight
    w = args[7]
    assert np.all(w[res.pair_in_best] > 0)
    for side in (args[5], args[6]):
        chosen = side[res.pair_in_best]
        assert len(np.unique(chosen)) == len(chosen)
    np.testing.assert_allclose(np.bincount(args[4][res.pair_in_best], w[res.pair_in_best],
                                           minlength=n_isl), res.best_log_weight, rtol=TOL, atol=TOL)


# ----------------------------------------------------------------------------- oversize islands
def test_oversize_islands_are_flagged_and_exact_on_trees(rng):
    star = (1, 30, {(0, b): rng.normal(0, 2) for b in range(30)})             # one X-ray source
    chain = (6, 6, {**{(i, i): rng.normal(1, 1) for i in range(6)},
                    **{(i + 1, i): rng.normal(0, 1) for i in range(5)}})       # a path graph
    loopy = (4, 5, random_island(rng, 4, 5, density=0.8))
    islands = [star, chain, loopy]
    args, keys = pack(islands, rng)
    exact = evaluate_islands(*args, backend="numpy")
    approx = evaluate_islands(*args, backend="numpy", max_small_side=0)
    assert set(approx.status) <= {APPROX_BETHE, APPROX_NOT_CONVERGED}
    assert approx.approximate.all() and not exact.approximate.any()
    tree = np.isin(args[4], [0, 1])
    np.testing.assert_allclose(approx.log_evidence[:2], exact.log_evidence[:2], rtol=1e-8)
    np.testing.assert_allclose(approx.pair_prob[tree], exact.pair_prob[tree], atol=1e-8)
    # loopy island: an approximation, but a valid one with the exact best hypothesis
    np.testing.assert_allclose(approx.pair_prob, exact.pair_prob, atol=0.1)
    assert approx.log_evidence[2] <= exact.log_evidence[2] + 1e-9
    np.testing.assert_array_equal(approx.pair_in_best, exact.pair_in_best)
    sa, sb = source_sums(approx, args)
    np.testing.assert_allclose(sa, 1.0, atol=1e-6)
    np.testing.assert_allclose(sb, 1.0, atol=1e-6)
    assert np.all((approx.best_prob > 0) & (approx.best_prob <= 1))


def test_island_over_the_memory_budget_is_approximated(rng):
    args, _ = pack([(3, 30, random_island(rng, 3, 30)), (1, 2, {(0, 0): 1.0})], rng)
    res = evaluate_islands(*args, backend="numpy", workspace_bytes=2000)
    assert res.status[0] in (APPROX_BETHE, APPROX_NOT_CONVERGED) and res.status[1] == EXACT


def test_large_oversize_island_runs(rng):
    n = 40
    pairs = {(a, b): rng.normal(0, 2) for a in range(n) for b in range(n) if abs(a - b) <= 2}
    args, _ = pack([(n, n, pairs)], rng)
    res = evaluate_islands(*args, backend="numpy", max_small_side=12)
    assert res.status[0] in (APPROX_BETHE, APPROX_NOT_CONVERGED)
    assert np.all((res.pair_prob >= 0) & (res.pair_prob <= 1))
    assert np.isfinite(res.log_evidence[0]) and res.log_evidence[0] >= res.best_log_weight[0] - 1e-9


# ----------------------------------------------------------------------------- acceptance
def test_accept_modes():
    islands = [(1, 2, {(0, 0): 3.0, (0, 1): 2.98}),     # ambiguous: best hypothesis p < 0.5
               (1, 1, {(0, 0): 5.0}),                 # confident
               (1, 1, {(0, 0): -3.0})]                # best: unmatched
    args, keys = pack(islands)
    res = evaluate_islands(*args, backend="numpy")
    best = accept(res)
    np.testing.assert_array_equal(best, res.pair_in_best)
    assert best[keys.index((0, 0, 0))] and best[keys.index((1, 0, 0))] and not best.sum() > 2
    strict = accept(res, 0.5)
    assert not strict[keys.index((0, 0, 0))] and strict[keys.index((1, 0, 0))]
    by_pair = accept(res, 0.9, by="pair")
    np.testing.assert_array_equal(by_pair, res.pair_prob >= 0.9)
    with pytest.raises(ValueError):
        accept(res, 0.4, by="pair")
    with pytest.raises(ValueError):
        accept(res, 0.5, by="nonsense")
    approx = evaluate_islands(*args, backend="numpy", max_small_side=0)
    assert not accept(approx, include_approximate=False).any()


def test_island_set_adapter(rng):
    """The IslandSet form (pairs sorted by (ia, ib), grouped per island by pair_ptr/pair_idx)."""
    from types import SimpleNamespace

    islands = [(2, 3, random_island(rng, 2, 3, density=1)), (1, 2, random_island(rng, 1, 2, density=1))]
    args, keys = pack(islands)
    ptr_a, ma, ptr_b, mb, pi, pa, pb, w = args
    order = np.lexsort((pb, pa))
    pair_idx = np.argsort(pi[order], kind="stable")
    iset = SimpleNamespace(a_ptr=ptr_a, a_rows=ma, b_ptr=ptr_b, b_rows=mb, ia=pa[order], ib=pb[order],
                           pair_ptr=np.concatenate([[0], np.cumsum(np.bincount(pi))]), pair_idx=pair_idx)
    res = evaluate_island_set(iset, w[order], backend="numpy")
    ref = evaluate_islands(*args, backend="numpy")
    np.testing.assert_array_equal(res.pair_prob, ref.pair_prob[order])
    np.testing.assert_array_equal(res.log_evidence, ref.log_evidence)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_reported():
    args, _ = pack([(2, 2, {(0, 0): 1.0, (1, 1): 0.5})])
    ptr_a, ma, ptr_b, mb, pi, pa, pb, w = args
    with pytest.raises(ValueError, match="finite or -inf"):
        evaluate_islands(ptr_a, ma, ptr_b, mb, pi, pa, pb, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="not a member"):
        evaluate_islands(ptr_a, ma, ptr_b, mb, pi, np.array([0, 7]), pb, w)
    with pytest.raises(ValueError, match="more than once"):
        evaluate_islands(ptr_a, ma, ptr_b, mb, pi[[0, 0]], pa[[0, 0]], pb[[0, 0]], w)
    with pytest.raises(ValueError, match="more than once"):
        evaluate_islands(ptr_a, np.array([0, 0]), ptr_b, mb, pi, pa, pb, w)
    with pytest.raises(ValueError, match="island_ptr_a"):
        evaluate_islands(np.array([0, 3]), ma, ptr_b, mb, pi, pa, pb, w)
    with pytest.raises(ValueError, match="max_small_side"):
        evaluate_islands(*args, max_small_side=40)


# ----------------------------------------------------------------------------- backends
def test_backend_fixture_matches_enumeration(backend, rng):
    islands = [(int(rng.integers(1, 5)), int(rng.integers(1, 7)), None) for _ in range(50)]
    islands = [(na, nb, random_island(rng, na, nb, neg_inf=0.1)) for na, nb, _ in islands]
    args, keys = pack(islands, rng)
    res = evaluate_islands(*args, backend=backend)
    check_against_brute(islands, res, args, keys)


def test_cupy_equals_numpy(gpu_backend, rng):
    islands = []
    for _ in range(300):
        na, nb = int(rng.integers(1, 6)), int(rng.integers(1, 40))
        if rng.random() < 0.5:
            na, nb = nb, na
        islands.append((na, nb, random_island(rng, na, nb, density=0.5)))
    islands.append((12, 200, random_island(rng, 12, 200, density=0.5)))
    islands.append((3, 4, {(a, b): 1.0 for a in range(3) for b in range(4)}))   # exact ties
    args, _ = pack(islands, rng)
    cpu = evaluate_islands(*args, backend="numpy")
    gpu = evaluate_islands(*args, backend=gpu_backend)
    np.testing.assert_array_equal(cpu.pair_in_best, gpu.pair_in_best)
    np.testing.assert_array_equal(cpu.best_log_weight, gpu.best_log_weight)
    np.testing.assert_array_equal(cpu.status, gpu.status)
    np.testing.assert_allclose(gpu.log_evidence, cpu.log_evidence, rtol=TOL, atol=TOL)
    for f in ("pair_prob", "p_none_a", "p_none_b", "best_prob"):
        np.testing.assert_allclose(getattr(gpu, f), getattr(cpu, f), rtol=TOL, atol=1e-300)
