/**
 * Linear time on hostile input (issue 24), one of three files (the steps,
 * shapes and bound are in linear-time-cases.ts, which says why): the growth
 * of the other body steps (text/plain, base64, multipart, embedded message).
 */
import { PARTS, growthTests } from './linear-time-cases';

growthTests(PARTS.body);
