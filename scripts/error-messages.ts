// Every error the action can report: each `new ActionError(message, input)` in src/ (and of its
// subclasses), its message as a template (what the code fills in shown as "…") and the input it
// names. TROUBLESHOOTING.md is written by hand; scripts/troubleshooting.ts and a unit test check
// that it quotes every one of them.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export interface ErrorMessage {
  /** The message with every value the code fills in as "…". */
  template: string;
  /** The input the error names; "…" when the code decides it, '' when none. */
  input: string;
  /** Where it is raised ("src/ssh/connect.ts"). */
  file: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** A template ends in computed text, or has too little fixed text to tell it from others. */
const COMPUTED_TAIL = /…\s*$/;
const MIN_FIXED = 24;

/** Most variants kept for one expression; more stand for "…" (a value, not a message). */
const MAX_VARIANTS = 24;
const MAX_DEPTH = 4;

type FunctionLike = ts.FunctionDeclaration | ts.ArrowFunction | ts.FunctionExpression | ts.MethodDeclaration;

/** Reads the message expressions of src/: literals as they are, anything computed as "…". */
class Reader {
  /** Functions declared at the top level of each file, by name (to follow `message(…)` calls). */
  private readonly functions = new Map<string, { fn: FunctionLike; source: ts.SourceFile }[]>();

  constructor(private readonly sources: ts.SourceFile[]) {
    for (const source of sources) {
      for (const statement of source.statements) {
        if (ts.isFunctionDeclaration(statement) && statement.name)
          this.addFunction(statement.name.text, statement, source);
        if (ts.isVariableStatement(statement)) {
          for (const declaration of statement.declarationList.declarations) {
            const init = declaration.initializer;
            if (
              ts.isIdentifier(declaration.name) &&
              init &&
              (ts.isArrowFunction(init) || ts.isFunctionExpression(init))
            )
              this.addFunction(declaration.name.text, init, source);
          }
        }
      }
    }
  }

  private addFunction(name: string, fn: FunctionLike, source: ts.SourceFile): void {
    this.functions.set(name, [...(this.functions.get(name) ?? []), { fn, source }]);
  }

  /** The templates of a message: its computed parts followed into src/ when its text alone says too little. */
  message(node: ts.Expression, source: ts.SourceFile): string[] {
    const plain = this.templates(node, source, false, 0);
    return plain.every(distinctive) ? plain : this.templates(node, source, true, 0);
  }

  private templates(
    node: ts.Expression,
    source: ts.SourceFile,
    expand: boolean,
    depth: number,
    whole = true,
  ): string[] {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return [node.text];
    if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node) || ts.isNonNullExpression(node))
      return this.templates(node.expression, source, expand, depth, whole);
    if (ts.isConditionalExpression(node)) {
      return cap([
        ...this.templates(node.whenTrue, source, expand, depth, whole),
        ...this.templates(node.whenFalse, source, expand, depth, whole),
      ]);
    }
    if (ts.isTemplateExpression(node)) {
      let result = [node.head.text];
      for (const span of node.templateSpans) {
        const values = expand ? this.resolve(span.expression, source, depth + 1, false) : ['…'];
        result = cap(result.flatMap((before) => values.map((value) => `${before}${value}${span.literal.text}`)));
      }
      return result;
    }
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
      const left = this.templates(node.left, source, expand, depth, false);
      const right = this.templates(node.right, source, expand, depth, false);
      return cap(left.flatMap((a) => right.map((b) => a + b)));
    }
    return expand ? this.resolve(node, source, depth + 1, whole) : ['…'];
  }

  /**
   * A computed part: the texts it can hold when src/ spells them out, else "…". Followed: the
   * parameters of a function (what the calls in its file pass), constants, fields destructured
   * from an options object (what src/ assigns them), and a call that is the whole message.
   */
  private resolve(node: ts.Expression, source: ts.SourceFile, depth: number, whole = false): string[] {
    if (depth > MAX_DEPTH) return ['…'];
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
      // "….trim()": the text it trims.
      const method = node.expression.name.text;
      return ['trim', 'trimEnd', 'trimStart'].includes(method)
        ? this.resolve(node.expression.expression, source, depth, whole)
        : ['…'];
    }
    if (!ts.isIdentifier(node) && !ts.isCallExpression(node)) {
      return isText(node) ? this.templates(node, source, true, depth, whole) : ['…'];
    }
    if (ts.isCallExpression(node)) {
      if (!whole || !ts.isIdentifier(node.expression)) return ['…'];
      const found = this.functions.get(node.expression.text) ?? [];
      const returned = found.flatMap(({ fn, source: where }) =>
        returnedExpressions(fn).flatMap((expression) => this.templates(expression, where, true, depth + 1, true)),
      );
      return returned.length > 0 ? cap(returned) : ['…'];
    }
    const name = node.text;
    // A parameter of the enclosing function: what the calls in this file pass.
    for (let scope: ts.Node | undefined = node.parent; scope; scope = scope.parent) {
      if (!isFunctionLike(scope)) continue;
      const index = scope.parameters.findIndex(
        (parameter) => ts.isIdentifier(parameter.name) && parameter.name.text === name,
      );
      if (index < 0) continue;
      const callee = functionName(scope);
      const passed = (callee ? callsIn(source, callee) : []).flatMap((call) => {
        const argument = call.arguments[index];
        return argument ? this.templates(argument, source, true, depth + 1, whole) : [];
      });
      return passed.length > 0 ? cap(passed) : ['…'];
    }
    // A constant of this file, or a field destructured from an options object.
    const assigned: { expression: ts.Expression; source: ts.SourceFile }[] = [];
    let destructured = false;
    const find = (where: ts.SourceFile, properties: boolean) => {
      const visit = (child: ts.Node): void => {
        if (
          !properties &&
          ts.isVariableDeclaration(child) &&
          ts.isIdentifier(child.name) &&
          child.name.text === name &&
          child.initializer
        )
          assigned.push({ expression: child.initializer, source: where });
        if (!properties && ts.isBindingElement(child) && ts.isIdentifier(child.name) && child.name.text === name)
          destructured = true;
        if (properties && ts.isPropertyAssignment(child) && ts.isIdentifier(child.name) && child.name.text === name)
          assigned.push({ expression: child.initializer, source: where });
        ts.forEachChild(child, visit);
      };
      visit(where);
    };
    find(source, false);
    if (assigned.length === 0 && destructured) for (const where of this.sources) find(where, true);
    const values = assigned.flatMap(({ expression, source: where }) =>
      this.templates(expression, where, true, depth + 1, whole),
    );
    return values.length > 0 ? cap(values) : ['…'];
  }

  /** Every error raised in the files read. */
  collect(): ErrorMessage[] {
    const classes = new Set(['ActionError']);
    for (const source of this.sources) {
      const visit = (node: ts.Node): void => {
        if (
          ts.isClassDeclaration(node) &&
          node.name &&
          node.heritageClauses?.some((clause) =>
            clause.types.some((type) => type.expression.getText(source) === 'ActionError'),
          )
        )
          classes.add(node.name.text);
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    const messages: ErrorMessage[] = [];
    for (const source of this.sources) {
      const visit = (node: ts.Node): void => {
        if (ts.isNewExpression(node) && classes.has(node.expression.getText(source)) && node.arguments?.[0]) {
          const [message, input] = node.arguments;
          for (const template of this.message(message, source)) {
            messages.push({
              template: template.replace(/…(\s*…)+/g, '…'),
              input: !input ? '' : ts.isStringLiteral(input) ? input.text : '…',
              file: source.fileName.split(path.sep).join('/'),
            });
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    return messages;
  }
}

/** An expression whose text `templates` reads (not a value to follow). */
function isText(node: ts.Expression): boolean {
  return (
    ts.isStringLiteral(node) ||
    ts.isNoSubstitutionTemplateLiteral(node) ||
    ts.isTemplateExpression(node) ||
    ts.isParenthesizedExpression(node) ||
    ts.isAsExpression(node) ||
    ts.isNonNullExpression(node) ||
    ts.isConditionalExpression(node) ||
    (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken)
  );
}

function cap(values: string[]): string[] {
  const unique = [...new Set(values)];
  return unique.length > MAX_VARIANTS ? ['…'] : unique;
}

function isFunctionLike(node: ts.Node): node is FunctionLike {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node) ||
    ts.isMethodDeclaration(node)
  );
}

function functionName(fn: FunctionLike): string | undefined {
  if ((ts.isFunctionDeclaration(fn) || ts.isMethodDeclaration(fn)) && fn.name && ts.isIdentifier(fn.name))
    return fn.name.text;
  if (ts.isVariableDeclaration(fn.parent) && ts.isIdentifier(fn.parent.name)) return fn.parent.name.text;
  return undefined;
}

function callsIn(source: ts.SourceFile, name: string): ts.CallExpression[] {
  const calls: ts.CallExpression[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === name)
      calls.push(node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return calls;
}

/** The expressions a function returns (not those of functions nested in it). */
function returnedExpressions(fn: FunctionLike): ts.Expression[] {
  if (!fn.body) return [];
  if (!ts.isBlock(fn.body)) return [fn.body];
  const found: ts.Expression[] = [];
  const visit = (node: ts.Node): void => {
    if (isFunctionLike(node)) return;
    if (ts.isReturnStatement(node) && node.expression) found.push(node.expression);
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(fn.body, visit);
  return found;
}

/** The fixed pieces of a template: the text between the "…", on one line. */
export function fixedPieces(template: string): string[] {
  return template
    .split('…')
    .map((piece) => piece.replace(/\s+/g, ' ').trim())
    .filter((piece) => piece !== '');
}

/** Whether a template says enough by its fixed text alone (else its computed parts are followed). */
function distinctive(template: string): boolean {
  return !COMPUTED_TAIL.test(template) && fixedPieces(template).some((piece) => piece.length >= MIN_FIXED);
}

/** The errors raised in the files under `root` (default: src/). */
export function collectErrorMessages(root = 'src'): ErrorMessage[] {
  const sources = sourceFiles(root)
    .sort()
    .map((file) => ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true));
  return new Reader(sources).collect();
}

/** The message on one line. */
export function entryKey(message: ErrorMessage): string {
  return message.template.replace(/\s+/g, ' ').trim();
}
