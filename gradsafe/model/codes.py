"""The one table of finding codes. Reporters, `explain`, SARIF rules and docs read it from here."""

from __future__ import annotations

from dataclasses import dataclass

# The codes by name: modules that emit or test a code use these, never the string.
BRANCH_LEAK = "GS101"
BACKWARD_OVERFLOW = "GS102"
INFINITE_DERIVATIVE = "GS103"
NO_GRADIENT = "GS104"
FORWARD_OVERFLOW = "GS201"
MASK_MULTIPLY = "GS202"
FORWARD_INACCURATE = "GS203"
WRONG_CUSTOM_GRADIENT = "GS301"
BACKWARD_MUTATES_INPUT = "GS302"
BACKWARD_CONTRACT = "GS303"
FRAMEWORK_DISAGREEMENT = "GS401"
KINK_CONVENTION = "GS402"
PARAMETER_GRADIENT = "GS501"
DEGENERATE_PARAMETER = "GS502"


@dataclass(frozen=True)
class Example:
    """A minimal before/after pair in one framework."""

    framework: str
    before: str
    after: str


@dataclass(frozen=True)
class Code:
    code: str
    name: str
    summary: str
    explanation: str
    before: str
    after: str
    links: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()  # per framework; `before`/`after` is the short form
    # what to do when no verified rewrite exists (the suggestion's text then); empty: none
    advice: str = ""
    # the rewrites (suggest/rewrite/, by name) that can remove it; each declares the codes
    # it fixes in turn (tests/test_codes.py checks the two sides agree)
    rewrites: tuple[str, ...] = ()
    # every error or warning of this code in a fixture must get a verified rewrite
    fixable: bool = False
    # SARIF's default level for the rule: codes that are not bugs by themselves are lower
    sarif_level: str = "error"

    @property
    def all_examples(self) -> tuple[Example, ...]:
        return self.examples or (Example("", self.before, self.after),)


JAX_WHERE_FAQ = ("https://jax.readthedocs.io/en/latest/faq.html"
                 "#gradients-contain-nan-where-using-where")
TORCH_WHERE_ISSUE = "https://github.com/pytorch/pytorch/issues/68425"
TF_WHERE_DOCS = "https://www.tensorflow.org/api_docs/python/tf/where"


CODES: tuple[Code, ...] = (
    Code(
        BRANCH_LEAK,
        "branch-leak",
        "gradient is NaN/inf because a where/select discards a branch whose value or "
        "local derivative is not finite (0 x inf in the backward)",
        "where(c, a, b) evaluates both branches. In the backward, the discarded branch gets a "
        "zero cotangent, and the chain rule multiplies that zero by the branch's local "
        "derivative. When the discarded branch overflowed (exp(100) = inf in float32), "
        "0 * inf = NaN reaches the input gradient although the forward value is finite. "
        "Fix it by making the discarded branch safe: feed it an input that cannot overflow "
        "(the 'double where'), or mask inside the exponential.",
        "torch.where(x > 0, x, torch.exp(x) - 1)",
        "torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))",
        (TORCH_WHERE_ISSUE, JAX_WHERE_FAQ, TF_WHERE_DOCS),
        (
            Example("torch", "torch.where(x > 0, x, torch.exp(x) - 1)",
                    "safe = torch.where(x > 0, torch.zeros_like(x), x)\n"
                    "torch.where(x > 0, x, torch.expm1(safe))"),
            Example("tensorflow", "tf.where(x > 0, x, tf.exp(x) - 1)",
                    "safe = tf.where(x > 0, tf.zeros_like(x), x)\n"
                    "tf.where(x > 0, x, tf.math.expm1(safe))"),
            Example("jax", "jnp.where(x > 0, x, jnp.exp(x) - 1)",
                    "safe = jnp.where(x > 0, 0.0, x)  # the 'double where' of the JAX FAQ\n"
                    "jnp.where(x > 0, x, jnp.expm1(safe))"),
        ),
        advice=(
            "compute the discarded branch on a guarded input (where(c, x, safe) inside it), "
            "clamp its argument to the branch's domain, or give the function a custom "
            "gradient"),
        rewrites=("guard_where", "mask_where", "mask_exp", "clamp_arg", "mask_zero"),
        fixable=True,
    ),
    Code(
        BACKWARD_OVERFLOW,
        "backward-overflow",
        "gradient is NaN/inf from an overflow inside the backward of the selected computation",
        "The forward value is finite, but an intermediate value overflows and the backward "
        "divides or multiplies infinities: log(1 + exp(x)) at x = 100 has forward inf in "
        "float32 already, and in x * tanh(log(1 + exp(x))) the forward saturates to x while "
        "the backward computes exp(x) / (1 + exp(x)) = inf / inf = NaN. Use the framework's "
        "stable primitive (softplus, logaddexp, log_sigmoid) instead.",
        "x * torch.tanh(torch.log(1 + torch.exp(x)))",
        "x * torch.tanh(torch.nn.functional.softplus(x))",
        (JAX_WHERE_FAQ,),
        (
            Example("torch", "x * torch.tanh(torch.log(1 + torch.exp(x)))",
                    "x * torch.tanh(torch.nn.functional.softplus(x))"),
            Example("tensorflow", "x * tf.tanh(tf.math.log(1 + tf.exp(x)))",
                    "x * tf.tanh(tf.math.softplus(x))"),
            Example("jax", "x * jnp.tanh(jnp.log(1 + jnp.exp(x)))",
                    "x * jnp.tanh(jax.nn.softplus(x))"),
        ),
        advice=(
            "use a formula whose intermediates cannot overflow (softplus/logaddexp, expm1, "
            "log1p, log_softmax, log_sigmoid), clamp the argument of exp/pow, or define a "
            "custom gradient"),
        rewrites=("softplus", "sigmoid", "log_sigmoid", "log_softmax", "tanh", "saturate",
                  "log_quotient", "sinc", "log_cosh", "widen"),
        fixable=True,
    ),
    Code(
        INFINITE_DERIVATIVE,
        "infinite-derivative",
        "the derivative is infinite or undefined at a point (sqrt at 0, log at 0)",
        "The function is finite at the point but its derivative is not: sqrt'(0) = inf, "
        "d/dx x**0.5 at 0, log at 0. Training that visits the point gets inf or NaN. Add an "
        "epsilon inside the singular operation, guard the input, or write a custom gradient.",
        "torch.sqrt(x * x)",
        "torch.sqrt(x * x + 1e-12)",
        (JAX_WHERE_FAQ,),
        (
            Example("torch", "torch.sqrt(x * x)", "torch.sqrt(x * x + 1e-12)"),
            Example("tensorflow", "tf.sqrt(x * x)", "tf.sqrt(x * x + 1e-12)"),
            Example("jax", "jnp.sqrt(x * x)", "jnp.sqrt(x * x + 1e-12)"),
        ),
        advice=(
            "the derivative is infinite here: guard the input (sqrt(where(u > 0, u, 1))), "
            "add a small epsilon inside sqrt/log/division, or define a custom gradient that "
            "returns the limit"),
        rewrites=("safe_sqrt", "hypot", "sinc", "widen"),
    ),
    Code(
        NO_GRADIENT,
        "no-gradient",
        "the gradient is None, disconnected, or the output is not differentiable",
        "The target's output does not depend differentiably on its input: it returned an "
        "integer or boolean tensor, detached the graph, or went through NumPy. Gradients "
        "are None or zero everywhere.",
        "torch.floor(x).to(torch.int32)",
        "x + (torch.floor(x) - x).detach()  # straight-through: floor forward, identity backward",
        (),
        (
            Example("torch", "torch.floor(x).to(torch.int32)",
                    "x + (torch.floor(x) - x).detach()  # straight-through estimator"),
            Example("tensorflow", "tf.cast(tf.floor(x), tf.int32)",
                    "x + tf.stop_gradient(tf.floor(x) - x)  # straight-through estimator"),
            Example("jax", "jnp.floor(x).astype(jnp.int32)",
                    "x + jax.lax.stop_gradient(jnp.floor(x) - x)  # straight-through"),
        ),
    ),
    Code(
        FORWARD_OVERFLOW,
        "forward-overflow",
        "forward is inf/NaN for a finite input where the true value is finite",
        "An intermediate value overflows the dtype, so the forward returns inf or NaN where "
        "the same formula in float64 is finite and representable: tanh written with exps "
        "gives inf/inf = NaN for |x| > 88.7 in float32.",
        "(torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))",
        "torch.tanh(x)",
        (),
        (
            Example("torch", "(torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))",
                    "torch.tanh(x)"),
            Example("tensorflow", "(tf.exp(x) - tf.exp(-x)) / (tf.exp(x) + tf.exp(-x))",
                    "tf.tanh(x)"),
            Example("jax", "(jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x))",
                    "jnp.tanh(x)"),
        ),
        advice=(
            "use a formula whose intermediates cannot overflow (softplus/logaddexp, expm1, "
            "log1p, log_softmax), or clamp the argument of exp/pow"),
        rewrites=("tanh", "softplus", "sigmoid", "log_sigmoid", "log_softmax", "saturate",
                  "divide_first", "hypot", "log_cosh", "widen"),
        fixable=True,
    ),
    Code(
        MASK_MULTIPLY,
        "mask-multiply",
        "forward NaN from mask * f(x) where f(x) is inf (0 x inf in the forward)",
        "Selecting with a multiplication, mask * f(x) + (1 - mask) * g(x), computes both "
        "branches; where the mask is 0 and the branch overflowed, 0 * inf = NaN.",
        "m = x > 0\nm * x + (~m) * (torch.exp(x) - 1)",
        "torch.where(x > 0, x, torch.expm1(torch.where(x > 0, 0.0, x)))",
        (TORCH_WHERE_ISSUE,),
        (
            Example("torch", "m = (x > 0).to(x.dtype)\nm * x + (1 - m) * (torch.exp(x) - 1)",
                    "m = (x > 0).to(x.dtype)\n"
                    "m * x + (1 - m) * torch.expm1((1 - m) * x)  # mask inside the exp"),
            Example("tensorflow", "m = tf.cast(x > 0, x.dtype)\nm * x + (1 - m) * (tf.exp(x) - 1)",
                    "m = tf.cast(x > 0, x.dtype)\n"
                    "m * x + (1 - m) * tf.math.expm1((1 - m) * x)  # mask inside the exp"),
            Example("jax", "m = (x > 0).astype(x.dtype)\nm * x + (1 - m) * (jnp.exp(x) - 1)",
                    "m = (x > 0).astype(x.dtype)\n"
                    "m * x + (1 - m) * jnp.expm1((1 - m) * x)  # mask inside the exp"),
        ),
        advice=(
            "select with where instead of multiplying by a mask, and guard each branch's "
            "input"),
        rewrites=("mask_where", "mask_zero"),
        fixable=True,
    ),
    Code(
        FORWARD_INACCURATE,
        "forward-inaccurate",
        "forward deviates from a float64 evaluation beyond the dtype's tolerance",
        "The forward is finite but wrong: an intermediate overflowed or underflowed and the "
        "result lost all digits (x / sqrt(1 + x*x) returns 0 once x*x overflows).",
        "x / torch.sqrt(1 + x * x)",
        "torch.tanh(torch.asinh(x))  # the same function, no x * x",
        (),
        (
            Example("torch", "x / torch.sqrt(1 + x * x)",
                    "torch.tanh(torch.asinh(x))  # the same function, no x * x"),
            Example("tensorflow", "x / tf.sqrt(1 + x * x)",
                    "tf.tanh(tf.math.asinh(x))  # the same function, no x * x"),
            Example("jax", "x / jnp.sqrt(1 + x * x)",
                    "jnp.tanh(jnp.arcsinh(x))  # the same function, no x * x"),
        ),
        advice=(
            "use a formula that does not overflow or cancel (hypot, rsqrt of a scaled value, "
            "expm1/log1p), or clamp the input to where the formula is exact"),
        rewrites=("expm1", "log1p", "hypot", "divide_first", "widen"),
        sarif_level="warning",
    ),
    Code(
        WRONG_CUSTOM_GRADIENT,
        "wrong-custom-gradient",
        "a hand-written backward disagrees with the numeric derivative",
        "The gradient returned by a custom backward differs from autodiff of the forward and "
        "from a float64 numeric derivative beyond the dtype's tolerance.",
        "return grad * y  # d/dx sigmoid is y * (1 - y)",
        "return grad * y * (1 - y)",
    ),
    Code(
        BACKWARD_MUTATES_INPUT,
        "backward-mutates-input",
        "a hand-written backward changes its incoming gradient in place",
        "The incoming gradient array can be shared with other consumers; writing into it "
        "corrupts their gradients.",
        "dout[self.mask] = 0\nreturn dout",
        "dx = dout.copy()\ndx[self.mask] = 0\nreturn dx",
    ),
    Code(
        BACKWARD_CONTRACT,
        "backward-contract",
        "a hand-written backward returns nothing, or the wrong shape/dtype",
        "A backward must return one gradient per input, with the input's shape and dtype.",
        "dx = dout * mask  # and no return",
        "return dout * mask",
    ),
    Code(
        FRAMEWORK_DISAGREEMENT,
        "framework-disagreement",
        "the same definition gives different values or gradients in different frameworks",
        "Two ports of one activation (or one portable definition run on two frameworks) "
        "differ beyond the dtype's tolerance on the same inputs: a sign slip in one branch, "
        "a different constant, a different default slope or approximation, or an overflow "
        "in one framework's kernel that the other avoids. `gradsafe compare A B [C]` "
        "reports how many probes differ, where, and the largest difference.",
        "jnp.where(x > 0, x, 0.1 * x)  vs  torch.where(x > 0, x, 0.01 * x)",
        "use the same constant in both ports",
        sarif_level="warning",
    ),
    Code(
        KINK_CONVENTION,
        "kink-convention",
        "frameworks pick different valid subgradients at a non-differentiable point",
        "At a kink (abs, max, clip at 0) any subgradient is valid; frameworks differ, which "
        "matters when inputs sit exactly on the kink (ReLU networks do hit 0 exactly). "
        "`gradsafe compare` finds the points by measurement: the derivative just below and "
        "just above differ, the sides agree there, and each side's value lies between the "
        "two; try `gradsafe compare torch.abs jax.numpy.abs tf.abs`.",
        "jnp.abs(x)  # d/dx at 0: 1 in JAX, 0 in torch",
        "document the convention, or use where(x > 0, ...) explicitly",
        sarif_level="note",
    ),
    Code(
        PARAMETER_GRADIENT,
        "parameter-gradient",
        "non-finite gradient with respect to a learnable parameter",
        "The gradient of a learnable parameter (nn.Parameter, Keras weight, nnx.Param, "
        "Trax weights) is not finite, so the optimizer writes NaN into the weights. It can "
        "happen where the input gradient is finite, and a where-leak in a term scaled by "
        "the parameter reaches both.",
        "self.alpha * (torch.exp(x) - 1)  # inside a where",
        "self.alpha * torch.expm1(torch.where(x > 0, 0.0, x))",
        advice=(
            "compute the discarded branch on a guarded input so the parameter's gradient "
            "never sees 0 * inf, or give the function a custom gradient"),
        rewrites=("guard_where", "mask_where", "mask_exp", "clamp_arg"),
        fixable=True,
    ),
    Code(
        DEGENERATE_PARAMETER,
        "degenerate-parameter",
        "a constructor argument value makes the function non-finite",
        "Some parameter values (alpha = 0, beta = 0) divide by zero and make the function NaN "
        "for every input.",
        "x + torch.sin(a * x) ** 2 / a",
        "x + torch.sin(a * x) ** 2 / (a + 1e-9)",
        advice=(
            "reject this constructor value in __init__ or keep it away from it "
            "(e.g. alpha + 1e-9), or guard the division it reaches"),
        rewrites=("guard_where",),
    ),
)

BY_CODE: dict[str, Code] = {c.code: c for c in CODES}
# codes a rewrite can remove; GS502 (a degenerate constructor value) too when the code
# already tests the parameter (`where(beta != 0, f(x) / beta, g(x))` gets the double where on
# beta), else it gets advice
REWRITE_CODES = frozenset(c.code for c in CODES if c.rewrites)
ADVICE: dict[str, str] = {c.code: c.advice for c in CODES if c.advice}


def lookup(code: str) -> Code:
    try:
        return BY_CODE[code.upper()]
    except KeyError:
        raise KeyError(f"unknown code {code!r}; known: {', '.join(BY_CODE)}") from None
