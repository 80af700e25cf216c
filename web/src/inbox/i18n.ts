export const inboxCatalogs = { en: {}, sv: {}, nb: {}, hu: {} } as Record<string, Record<string,string>>;
