// openapi-typescript prints its output with the TypeScript 5 compiler API, which TypeScript 7
// (our type checker) no longer ships. package.json installs TypeScript 5 under the alias
// `typescript-5`; this resolve hook hands it to openapi-typescript (and only to it).
export async function resolve(specifier, context, next) {
  if (specifier === 'typescript' && context.parentURL && context.parentURL.includes('/node_modules/openapi-typescript/')) {
    return next('typescript-5', context);
  }
  return next(specifier, context);
}
