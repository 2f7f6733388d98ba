/** Reported by /health; bump with releases. */
export const VERSION = '0.1.0';
