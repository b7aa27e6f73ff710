"""A cell body compiled once and run in the user's namespace, the way IPython's ``%%time``
runs its cell.

``%%repro_fit`` first handed its body to a nested ``shell.run_cell``, as ``%%capture``
does. Measured in a real kernel, that made the first epoch of the FD001 fit 4.5% slower
than the same cell run directly, while the same code run by ``exec`` was not slower (0.999;
docs/performance.md, variant E of benchmarks/diagnose_fit.py). So the body is transformed,
compiled and executed here: magics and shell escapes in it still work, tracebacks show its
lines, its last expression is displayed. Compiling first also means a body that does not
parse is refused before the model is touched. Top-level ``await`` is refused too: a nested
``run_cell`` could not run it either inside a kernel, whose event loop is already running.
"""
import ast


class AwaitInBody(Exception):
    """The body awaits at top level, which a fit cell cannot run."""


class Body:
    """``cell`` compiled for ``shell``; raises what the cell's syntax or an input transformer
    raises, before anything has run."""

    def __init__(self, shell, cell: str):
        self.shell, self.cell = shell, cell
        self.source = source = shell.transform_cell(cell)  # the Python it runs: what its inputs are read from
        if shell.should_run_async(cell, transformed_cell=source):
            raise AwaitInBody("a %%repro_fit cell cannot use top-level await: "
                              "run the awaiting code in a cell of its own")
        source = "\n" + source  # the magic's line: tracebacks then number lines as the notebook does
        filename = shell.compile.cache(source, shell.execution_count, raw_code="\n" + cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
        body = tree.body
        quiet = shell.displayhook.semicolon_at_end_of_expression(source)  # ';' hides the last value
        last = body.pop() if body and isinstance(body[-1], ast.Expr) and not quiet else None
        self.code = shell.compile(ast.Module(body, type_ignores=[]), filename, "exec")
        # "single" mode hands the last value to the display hook, as for a cell's last line
        self.shown = None if last is None else shell.compile(ast.Interactive([last]), filename, "single")

    def run(self):
        """Run the body; the error it raised (already shown to the user, as IPython shows
        a cell's error), or None when it finished."""
        __tracebackhide__ = True  # noqa: F841 -- IPython leaves this frame out of tracebacks
        shell = self.shell
        try:
            exec(self.code, shell.user_global_ns, shell.user_ns)
            if self.shown is not None:
                exec(self.shown, shell.user_global_ns, shell.user_ns)
        except (Exception, KeyboardInterrupt, SystemExit) as error:  # the body's own: show, report
            shell.showtraceback()
            return error
        return None
