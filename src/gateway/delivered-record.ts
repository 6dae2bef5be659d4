/**
 * How long the gateway keeps its record of delivered (arrival, recipient) pairs (src/gateway/delivery.ts): the
 * seal age window must not exceed it (config.ts), nor may a taken release be released again past it
 * (src/inspect/quarantine.ts). A module of its own, importing nothing, so both can read it.
 */
export const DELIVERED_RECORD_SECONDS = 7 * 86400;
