import { filesSuite } from '../suites/files.js';

filesSuite('files in a real VM');
