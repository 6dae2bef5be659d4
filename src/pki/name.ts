/**
 * Distinguished names. Each attribute becomes its own RDN (a SET of one
 * AttributeTypeAndValue): pkijs would otherwise put every attribute pushed into
 * one RelativeDistinguishedNames into a single multi-valued RDN (STACK-NOTES.md).
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { ATTR } from './oids';

export interface NameAttribute {
  readonly type: string;
  readonly value: string;
}

const SHORT: Record<string, string> = {
  [ATTR.commonName]: 'CN',
  [ATTR.serialNumber]: 'serialNumber',
  [ATTR.country]: 'C',
  [ATTR.organization]: 'O',
  [ATTR.organizationalUnit]: 'OU',
  [ATTR.pseudonym]: 'pseudonym',
  [ATTR.emailAddress]: 'emailAddress',
};

function encodeValue(attr: NameAttribute): asn1js.BaseBlock {
  if (attr.type === ATTR.country || attr.type === ATTR.serialNumber) {
    if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(attr.value)) {
      throw new Error(`Cannot encode name attribute "${attr.value}": not a PrintableString`);
    }
    return new asn1js.PrintableString({ value: attr.value });
  }
  if (attr.type === ATTR.emailAddress) return new asn1js.IA5String({ value: attr.value });
  return new asn1js.Utf8String({ value: attr.value });
}

/** DER of a Name with one single-valued RDN per attribute, in the given order. */
export function encodeName(attrs: readonly NameAttribute[]): Uint8Array {
  for (const a of attrs) {
    if (a.value.length === 0 || a.value.length > 128) throw new Error(`Cannot encode name attribute "${a.value}": length must be 1..128`);
  }
  const rdns = attrs.map((a) => new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: a.type }), encodeValue(a)] })] }));
  return new Uint8Array(new asn1js.Sequence({ value: rdns }).toBER());
}

/** A pkijs name that re-encodes to exactly these DER bytes. */
export function pkijsName(der: Uint8Array): pkijs.RelativeDistinguishedNames {
  return pkijs.RelativeDistinguishedNames.fromBER(new Uint8Array(der));
}

/** The attributes of a parsed name, in order (multi-valued RDNs flattened). */
export function nameAttributes(name: pkijs.RelativeDistinguishedNames): NameAttribute[] {
  return name.typesAndValues.map((tv) => {
    const v = tv.value as unknown as { valueBlock?: { value?: unknown } };
    const value = typeof v?.valueBlock?.value === 'string' ? v.valueBlock.value : '';
    return { type: tv.type, value };
  });
}

/** Display form, most significant first, e.g. `O=A Corp, CN=a.example organisation CA`. */
export function formatName(attrs: readonly NameAttribute[]): string {
  return attrs.map((a) => `${SHORT[a.type] ?? a.type}=${a.value}`).join(', ');
}
