// Stylesheets are bundled by Vite; importing one yields nothing to the script.
declare module '*.css';
