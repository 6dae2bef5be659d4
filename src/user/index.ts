/** The user side of SSMAX (docs/user.md): profile, sign-encrypt, submit, open. */
export * from './errors';
export * from './profile';
export * from './sign-encrypt';
export * from './submit';
export * from './open';
