/** The encrypted-message format (docs/format.md). */
export * from './limits';
export * from './headers';
export * from './source';
export * from './encrypt';
export * from './decrypt';
export * from './capsules';
