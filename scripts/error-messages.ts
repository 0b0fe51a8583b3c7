// Every error the action can report: each `new ActionError(message, input)` in src/, its message
// as a template (what the code fills in shown as "…") and the input it names. TROUBLESHOOTING.md
// is generated from them (scripts/troubleshooting.ts), and a unit test fails when one is missing.
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

/** The text of a message expression: literals as they are, anything computed as "…". */
function templateOf(node: ts.Expression): string {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isParenthesizedExpression(node)) return templateOf(node.expression);
  if (ts.isTemplateExpression(node)) {
    return node.head.text + node.templateSpans.map((span) => `…${span.literal.text}`).join('');
  }
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    return templateOf(node.left) + templateOf(node.right);
  }
  return '…';
}

/** The errors raised in the files under `root` (default: src/). */
export function collectErrorMessages(root = 'src'): ErrorMessage[] {
  const messages: ErrorMessage[] = [];
  for (const file of sourceFiles(root).sort()) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isNewExpression(node) && node.expression.getText(source) === 'ActionError' && node.arguments?.[0]) {
        const [message, input] = node.arguments;
        messages.push({
          template: templateOf(message).replace(/…(…)+/g, '…'),
          input: !input ? '' : ts.isStringLiteral(input) ? input.text : '…',
          file: file.split(path.sep).join('/'),
        });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return messages;
}

/** The key under which TROUBLESHOOTING.md lists a message: its template on one line. */
export function entryKey(message: ErrorMessage): string {
  return message.template.replace(/\s+/g, ' ').trim();
}
