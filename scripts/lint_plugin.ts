/**
 * The project's own lint rules, loaded by `deno lint` (deno.json `lint.plugins`):
 * `chat/max-function-lines` keeps every function under `src/` to {@link MAX_FUNCTION_LINES} lines,
 * so each reads in one sitting; a long declarative table is data, not a function, and is not
 * counted (only function bodies are).
 * @module
 */

/** Longest function body under `src/`, in lines from its first to its last. */
export const MAX_FUNCTION_LINES = 80;

type FunctionNode =
  | Deno.lint.FunctionDeclaration
  | Deno.lint.FunctionExpression
  | Deno.lint.ArrowFunctionExpression;

const plugin: Deno.lint.Plugin = {
  name: "chat",
  rules: {
    "max-function-lines": {
      create(context) {
        if (!/[\\/]src[\\/]/.test(context.filename)) return {};
        const text = context.sourceCode.text;
        const linesOf = (node: FunctionNode) => {
          const [start, end] = node.range;
          return text.slice(start, end).split("\n").length;
        };
        const check = (node: FunctionNode) => {
          const lines = linesOf(node);
          if (lines <= MAX_FUNCTION_LINES) return;
          context.report({
            node,
            message: `this function is ${lines} lines long; at most ${MAX_FUNCTION_LINES}`,
            hint: "split it into functions that each do one thing",
          });
        };
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
        };
      },
    },
  },
};

export default plugin;
