"""Inline C# kernels: ``gilbridge.csharp(source)`` compiled with Roslyn in the workers
that run it, cached by the source's hash, errors as ``CSharpCompileError``."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

import gilbridge
import gilbridge.multiprocessing as mp
from gilbridge.futures import ProcessPoolExecutor
from gilbridge.multiprocessing.pool import Pool

from conftest import CSHARP_CACHE

pytestmark = pytest.mark.usefixtures("host")

# Members only: wrapped in a static class with the usual usings (System.Linq here).
COUNT = """
public static long Count(long start, long stop)
{
    return Enumerable.Range((int)start, (int)(stop - start)).LongCount(IsPrime);
}

static bool IsPrime(int n)
{
    if (n < 2) return false;
    for (int d = 2; d * d <= n; d++) if (n % d == 0) return false;
    return true;
}
"""

# A whole compilation unit: its own namespace, two public static methods.
WHOLE = """
using System;

namespace Tests.Inline
{
    public static class Text
    {
        public static string Shout(string s) => s.ToUpperInvariant() + "!";
        public static double Hypot(double a, double b) => Math.Sqrt(a * a + b * b);
    }
}
"""


def _python_count(start: int, stop: int) -> int:
    return sum(1 for n in range(max(start, 2), stop) if all(n % d for d in range(2, int(n ** 0.5) + 1)))


@pytest.fixture(scope="module")
def pool(bridge_host: object) -> Iterator[Pool]:
    p = mp.Pool(2)
    yield p
    p.terminate()


def test_members_compile_and_run_in_a_pool_like_any_kernel(pool: Pool) -> None:
    count = gilbridge.csharp(COUNT)
    ranges = [(0, 5_000), (5_000, 10_000), (10_000, 20_000)]
    assert pool.starmap(count, ranges) == [_python_count(a, b) for a, b in ranges]
    assert pool.apply_async(count, (0, 100)).get(timeout=60) == 25
    # The compiled assembly is kept by the source's SHA-256, for the next workers.
    digest = hashlib.sha256(COUNT.encode()).hexdigest()
    assert (CSHARP_CACHE / f"{digest}.dll").is_file()


def test_a_whole_compilation_unit_and_a_named_method(pool: Pool) -> None:
    shout = gilbridge.csharp(WHOLE, method="Shout")
    hypot = gilbridge.csharp(WHOLE, method="Hypot")
    assert pool.map(shout, ["a", "bc"]) == ["A!", "BC!"]
    assert pool.apply(hypot, (3.0, 4.0)) == 5.0


def test_a_compile_error_names_the_line_and_column_of_the_given_source(pool: Pool) -> None:
    broken = gilbridge.csharp("public static int F(int x)\n{\n    return x +;\n}\n")
    with pytest.raises(gilbridge.CSharpCompileError) as caught:
        pool.apply(broken, (1,))
    error = caught.value
    assert isinstance(error, SyntaxError)
    assert (error.lineno, error.offset) == (3, 15), str(error)
    assert "CS1525" in error.msg
    # Every error is kept; a second one on another line is listed too.
    two = gilbridge.csharp("public static int F(int x) => y;\npublic static int G(int x) => z;\n")
    with pytest.raises(gilbridge.CSharpCompileError) as caught:
        pool.apply(two, (1,))
    assert caught.value.lineno == 1
    assert "line 2, column" in caught.value.diagnostics and "CS0103" in caught.value.diagnostics


def test_which_method_to_call(pool: Pool) -> None:
    with pytest.raises(ValueError, match=r"several public static methods \(Shout, Hypot\)"):
        pool.apply(gilbridge.csharp(WHOLE), ("a",))
    with pytest.raises(AttributeError, match="no public static method Missing"):
        pool.apply(gilbridge.csharp(WHOLE, method="Missing"), ("a",))


def test_a_cs_file_an_executor_and_a_direct_call(tmp_path: Path) -> None:
    path = tmp_path / "square.cs"
    path.write_text("public static long Square(long x) => x * x;\n", encoding="utf-8")
    square = gilbridge.csharp(str(path))
    assert square.source == path.read_text(encoding="utf-8")
    with ProcessPoolExecutor(max_workers=1) as executor:
        assert executor.submit(square, 12).result(timeout=60) == 144
    assert square(5) == 25  # a one-off kernel worker (the .NET executable) compiles it too


def test_references_pickle_and_check_their_arguments() -> None:
    kernel = gilbridge.csharp(WHOLE, method="Shout")
    again = pickle.loads(pickle.dumps(kernel))
    assert again == kernel and again.method == "Shout" and again.source == WHOLE
    assert kernel != gilbridge.csharp(WHOLE, method="Hypot")
    assert repr(kernel) == "gilbridge.csharp(<12 lines of C#>, method='Shout')"
    error = pickle.loads(pickle.dumps(gilbridge.CSharpCompileError("line 2, column 5: error CS1002: ; expected", "x")))
    assert (error.lineno, error.offset, error.msg, error.diagnostics) == (2, 5, "error CS1002: ; expected", "x")
    with pytest.raises(TypeError):
        gilbridge.csharp(b"public static int F() => 1;")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        gilbridge.csharp("   ")
    with pytest.raises(ValueError):
        gilbridge.csharp(COUNT, method="not a name")
