/**
 * Linear time on hostile input (issue 24), one of three files (the steps,
 * shapes and bound are in linear-time-cases.ts, which says why): the growth
 * of the steps over header-like and armoured text.
 */
import { PARTS, growthTests } from './linear-time-cases';

growthTests(PARTS.text);
